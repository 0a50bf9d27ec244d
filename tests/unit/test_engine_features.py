"""Properties of the incremental features and the anomaly score."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.engine.anomaly import anomaly_score
from pipeline.engine.features import (
    COUNTER,
    GAUGE,
    IGNORED,
    LEVEL,
    SLOTS,
    make_layout,
    to_log,
    update,
)

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
counts = st.floats(min_value=0, max_value=1e9, allow_nan=False)

LAYOUT = make_layout(("c", "g", "l", "x"), {"c": COUNTER, "g": GAUGE, "l": LEVEL, "x": IGNORED})


def _run(readings: list[dict[str, float]], step_s: float = 86400.0) -> list[list[float]]:
    vals = [0.0] * (SLOTS * len(LAYOUT.metrics))
    vectors = []
    for i, metrics in enumerate(readings):
        out: list[float] = []
        decay = 0.5 ** (step_s / (7 * 86400.0)) if i else 1.0
        rise = 0.5 ** (step_s / (3 * 86400.0)) if i else 1.0
        update(
            vals,
            LAYOUT,
            metrics,
            i * step_s,
            ew_decay=decay,
            rise_decay=rise,
            rise_halflife_s=3 * 86400.0,
            baseline_readings=5,
            out=out,
        )
        vectors.append(out)
    return vectors


def test_layout_names_follow_kinds() -> None:
    assert LAYOUT.names == (
        "c",
        "c.delta",
        "c.rose",
        "c.growth",
        "c.recent",
        "g",
        "g.delta",
        "g.z",
        "g.drift",
        "l",
        "anomaly",
    )
    assert LAYOUT.width == 11


@given(
    st.lists(
        st.fixed_dictionaries({"c": counts, "g": finite, "l": finite, "x": finite}),
        min_size=1,
        max_size=30,
    )
)
@settings(max_examples=60, deadline=None)
def test_features_are_finite_and_sized(readings: list[dict[str, float]]) -> None:
    for vec in _run(readings):
        assert len(vec) == LAYOUT.width - 1  # the scorer appends the anomaly score
        assert all(math.isfinite(v) for v in vec)


@given(st.lists(counts, min_size=2, max_size=30))
@settings(max_examples=60, deadline=None)
def test_counter_delta_growth_and_rises(values: list[float]) -> None:
    vectors = _run([{"c": v, "g": 1.0, "l": 1.0} for v in values])
    first = to_log(values[0])
    for i, vec in enumerate(vectors):
        level, delta, rose, growth, recent = vec[:5]
        assert level == to_log(values[i])
        assert math.isclose(delta, 0.0 if i == 0 else to_log(values[i]) - to_log(values[i - 1]))
        assert rose >= 0.0
        assert 0.0 <= recent <= 1.0
        if all(v == values[0] for v in values[: i + 1]):
            assert rose == 0.0
            assert recent == 0.0
        if i == 0:
            assert growth == 0.0
    # growth is measured from the first-seen baseline (mean of the first 5 readings)
    assert math.isclose(vectors[0][3], 0.0)
    assert first == vectors[0][0]


@given(st.lists(finite, min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_constant_gauge_has_no_deviation(values: list[float]) -> None:
    v = values[0]
    for vec in _run([{"c": 0.0, "g": v, "l": 5.0}] * len(values)):
        _, delta, z, drift = vec[5:9]
        assert delta == 0.0
        assert z == 0.0
        assert drift == 0.0


def test_missing_metric_keeps_state_and_reports_no_change() -> None:
    vectors = _run(
        [{"c": 3.0, "g": 10.0, "l": 1.0}, {"g": 10.0, "l": 1.0}, {"c": 3.0, "g": 10.0, "l": 1.0}]
    )
    assert vectors[1][0] == to_log(3.0)
    assert vectors[1][1] == 0.0
    assert vectors[2][1] == 0.0


def test_level_only_metric_has_no_growth_feature() -> None:
    # A clock (power-on hours) grows with the length of the record: only its level is a feature.
    vectors = _run([{"c": 0.0, "g": 1.0, "l": 24.0 * i} for i in range(10)])
    assert [vec[9] for vec in vectors] == [to_log(24.0 * i) for i in range(10)]
    assert all(len(vec) == 10 for vec in vectors)


@given(st.floats(min_value=0, max_value=1e300, allow_nan=False))
def test_anomaly_score_is_in_unit_interval_and_monotone(x: float) -> None:
    a = anomaly_score(x)
    assert 0.0 <= a < 1.0 or (a == 1.0 and x > 1e15)
    assert anomaly_score(x * 2 + 1) >= a
