"""Properties of the incremental features and the anomaly score."""

from __future__ import annotations

import math

import pytest
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
        "c.rose",
        "c.growth",
        "c.recent",
        "g",
        "g.z",
        "g.drift",
        "l",
        "anomaly",
        "expert",
    )
    assert LAYOUT.width == 10
    assert LAYOUT.counters == (0,)


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
        assert len(vec) == LAYOUT.width - 2  # the scorer appends the anomaly and expert scores
        assert all(math.isfinite(v) for v in vec)


@given(st.lists(counts, min_size=2, max_size=30))
@settings(max_examples=60, deadline=None)
def test_counter_growth_and_rises(values: list[float]) -> None:
    vectors = _run([{"c": v, "g": 1.0, "l": 1.0} for v in values])
    first = to_log(values[0])
    for i, vec in enumerate(vectors):
        level, rose, growth, recent = vec[:4]
        assert level == to_log(values[i])
        assert rose >= 0.0
        assert 0.0 <= recent <= 1.0
        if all(v == values[0] for v in values[: i + 1]):
            assert rose == 0.0
            assert recent == 0.0
        # growth is measured from the first reading
        assert math.isclose(growth, level - first, abs_tol=1e-12)


def test_rises_do_not_depend_on_cadence() -> None:
    # The same climb from 0 to 8 over one day, reported once or hourly: same "rose".
    daily = _run([{"c": 0.0}, {"c": 8.0}], step_s=86400.0)[-1]
    hourly = _run([{"c": 8.0 * h / 24.0} for h in range(25)], step_s=3600.0)[-1]
    assert daily[1] == pytest.approx(to_log(8.0), rel=0.02)
    assert hourly[1] == pytest.approx(daily[1], rel=0.15)  # only the decay differs
    assert hourly[2] == daily[2]  # growth since first seen


@given(st.lists(finite, min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_constant_gauge_has_no_deviation(values: list[float]) -> None:
    v = values[0]
    for vec in _run([{"c": 0.0, "g": v, "l": 5.0}] * len(values)):
        _, z, drift = vec[4:7]
        assert z == 0.0
        assert drift == 0.0


def test_missing_metric_keeps_state_and_reports_no_change() -> None:
    vectors = _run(
        [{"c": 3.0, "g": 10.0, "l": 1.0}, {"g": 10.0, "l": 1.0}, {"c": 3.0, "g": 10.0, "l": 1.0}]
    )
    assert vectors[1][0] == to_log(3.0)
    assert vectors[1][1] == 0.0  # no rise
    assert vectors[2][1] == 0.0


def test_level_only_metric_has_no_growth_feature() -> None:
    # A clock (power-on hours) grows with the length of the record: only its level is a feature.
    vectors = _run([{"c": 0.0, "g": 1.0, "l": 24.0 * i} for i in range(10)])
    assert [vec[7] for vec in vectors] == [to_log(24.0 * i) for i in range(10)]
    assert all(len(vec) == 8 for vec in vectors)


@given(st.floats(min_value=0, max_value=1e300, allow_nan=False))
def test_anomaly_score_is_in_unit_interval_and_monotone(x: float) -> None:
    a = anomaly_score(x)
    assert 0.0 <= a < 1.0 or (a == 1.0 and x > 1e15)
    assert anomaly_score(x * 2 + 1) >= a
