"""Explanations in the operator's terms: catalogue, peer sketch, raw change, severity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.catalogue_file import load_catalogue
from pipeline.cli.stream_cmd import format_alert
from pipeline.engine import EngineConfig, Scorer
from pipeline.engine.catalogue import SMART, MetricInfo, parse_entries
from pipeline.engine.explain import (
    MIN_PEER_SAMPLES,
    Explainer,
    PeerSketch,
    describe,
    span,
    split_feature,
)
from pipeline.engine.features import EXPERT_FEATURE
from pipeline.engine.policy import RAISE, Policy
from pipeline.errors import ConfigError
from schemas import Alert, Factor, Telemetry
from schemas.outputs import Explanation
from tests.unit.factories import make_alert

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
TYPE = "ST4000DM000"


def test_smart_catalogue_names_raw_and_normalized_attributes() -> None:
    assert SMART.get("smart_197_raw") == MetricInfo("pending sectors (SMART 197)", "sectors", True)
    assert SMART.get("smart_194_raw").unit == "°C"
    assert SMART.get("smart_9_raw").unit == "h"
    assert "lower is worse" in SMART.get("smart_5_normalized").name
    assert not SMART.get("smart_5_normalized").error_counter
    for number in (1, 3, 4, 5, 7, 9, 10, 12, 184, 187, 188, 189, 190, 192, 193, 194, 197, 198):
        assert f"smart_{number}_raw" in SMART
    for number in (199, 240, 241, 242):
        assert f"smart_{number}_normalized" in SMART
    assert SMART.get("fan_rpm") == MetricInfo("fan_rpm")  # unknown: its own name


def test_users_extend_and_override_the_catalogue() -> None:
    entries = parse_entries(
        {
            "metrics": {
                "fan_rpm": {"name": "fan speed", "unit": "rpm"},
                "smart_1_raw": {"name": "read errors", "unit": "errors", "error_counter": True},
            }
        }
    )
    catalogue = SMART.extended(entries)
    assert catalogue.get("fan_rpm") == MetricInfo("fan speed", "rpm", False)
    assert catalogue.get("smart_1_raw").error_counter
    assert catalogue.get("smart_5_raw") == SMART.get("smart_5_raw")
    assert len(catalogue) == len(SMART) + 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "[metrics.<name>]"),
        ({"metrics": {"x": 3}}, "metrics.x: expected a table"),
        ({"metrics": {"x": {"unit": "C"}}}, "metrics.x: name must be"),
        ({"metrics": {"x": {"name": "a", "colour": "red"}}}, "unknown key(s) colour"),
        ({"metrics": {"x": {"name": "a", "error_counter": "yes"}}}, "error_counter must be"),
    ],
)
def test_a_bad_catalogue_entry_is_named(document: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r".*") as error:
        parse_entries(document, source="my.toml")
    assert message in str(error.value)
    assert str(error.value).startswith("my.toml")


def test_peer_sketch_ranks_within_the_bin_width() -> None:
    sketch = PeerSketch()
    for value in range(1000):
        sketch.add(TYPE, {"m": float(value % 100)})
    below, above, samples = sketch.rank(TYPE, "m", 99.0)
    assert samples == 1000
    assert 0.9 <= below < 0.99
    assert above == 0.0
    below, above, _ = sketch.rank(TYPE, "m", 0.0)
    assert below == 0.0
    assert above == 0.99
    assert sketch.rank(TYPE, "other", 1.0) == (0.0, 0.0, 0)
    assert sketch.rank("other type", "m", 1.0) == (0.0, 0.0, 0)


def test_feature_names_split_into_metric_and_suffix() -> None:
    assert split_feature("smart_5_raw.delta", None) == ("smart_5_raw", ".delta")
    assert split_feature("smart_5_raw", None) == ("smart_5_raw", "")
    assert split_feature("disk.temp", {"disk.temp"}) == ("disk.temp", "")
    assert split_feature("disk.temp.z", {"disk.temp"}) == ("disk.temp", ".z")
    assert span(3 * 86_400) == "3 days"
    assert span(86_400) == "1 day"
    assert span(5 * 3600) == "5 h"
    assert span(20 * 60) == "20 min"


def _fleet_scorer() -> tuple[Scorer, dict[str, object]]:
    """A scorer that has seen 150 healthy drives for 4 days and one whose errors climb."""
    config = EngineConfig(counter_metrics=("smart_197_raw",), alert_budget=None, high_mark=0.5)
    scorer = Scorer(config)
    states: dict[str, object] = {}
    pending = [0.0, 8.0, 20.0, 40.0, 64.0]
    for day in range(5):
        ts = T0 + day * DAY
        for i in range(150):
            metrics = {"smart_197_raw": 0.0, "smart_194_raw": 30.0 + i % 5}
            reading = Telemetry(device_id=f"ok{i}", ts=ts, device_type=TYPE, metrics=metrics)
            states[reading.device_id] = scorer.on_telemetry(
                states.get(reading.device_id),  # type: ignore[arg-type]
                reading,
            ).state
        if day < 4:
            reading = Telemetry(
                device_id="bad",
                ts=ts,
                device_type=TYPE,
                metrics={"smart_197_raw": pending[day], "smart_194_raw": 41.0},
            )
            states["bad"] = scorer.on_telemetry(states.get("bad"), reading).state  # type: ignore[arg-type]
    return scorer, states


def test_explanations_give_raw_value_change_in_raw_units_and_peers() -> None:
    scorer, states = _fleet_scorer()
    state = states["bad"]
    reading = Telemetry(
        device_id="bad",
        ts=T0 + 4 * DAY,
        device_type=TYPE,
        metrics={"smart_197_raw": 64.0, "smart_194_raw": 41.0},
    )
    # Fold the reading in the way on_telemetry does before it explains (features first,
    # then the explanation, then the label buffer); a copy of the state keeps it simple.
    layout = scorer.layout(state.metrics)  # type: ignore[attr-defined]
    factors = [
        Factor(feature="smart_197_raw.delta", value=1.0, contribution=1.5),
        Factor(feature="smart_197_raw.rose", value=2.0, contribution=0.5),
        Factor(feature="anomaly", value=0.4, contribution=0.2),
    ]
    explained = scorer.explainer.explain(
        state,  # type: ignore[arg-type]
        layout,
        reading.metrics,
        factors,
        reading.ts.timestamp(),
    )
    assert explained.counters_rose == ["smart_197_raw"]
    first, anomaly = explained.explanations
    assert first.metric == "smart_197_raw"
    assert first.name == "pending sectors (SMART 197)"
    assert first.unit == "sectors"
    assert first.value == 64.0
    assert first.change == 56.0  # the oldest reading within 3 days held 8
    assert first.window_s == 3 * 86_400
    assert first.contribution == 2.0  # both of the metric's features
    assert first.peer_group == TYPE
    assert first.peer_samples >= MIN_PEER_SAMPLES
    assert first.peer_share_below is not None
    assert first.peer_share_below > 0.99
    assert first.text == (
        "pending sectors (SMART 197) 64 sectors, +56 in 3 days, higher than all 301 sampled "
        "ST4000DM000 readings"
    )
    assert anomaly.metric is None
    assert anomaly.text == "unusual readings for this device (anomaly score) 0.40"
    assert describe(first) == first.text


def test_prediction_factors_carry_plain_words() -> None:
    scorer, _ = _fleet_scorer()
    assert (
        scorer.explainer.label("smart_197_raw.rose") == "pending sectors (SMART 197): recent rises"
    )
    assert scorer.explainer.label("type=ST4000DM000") == "device type ST4000DM000 (its base rate)"
    assert scorer.explainer.label("fan.z") == "fan: deviation from the device's own normal"


def test_no_alert_before_the_budget_threshold_is_learnt() -> None:
    policy = Policy(EngineConfig(alert_budget=1000.0, threshold_smoothing=1.0))
    day = 86_400.0
    # Day 0: a high risk, but no threshold has been learnt yet.
    assert policy.decide(None, 0, 0.9, 10.0)[0] == 0
    # Day 1: the previous day's top risks were learnt; a higher risk now raises.
    assert policy.decide(None, 0, 0.95, day + 10.0, dt=day)[0] == RAISE
    assert policy.threshold() == pytest.approx(0.9)


def test_a_period_of_zero_risks_teaches_no_threshold() -> None:
    policy = Policy(EngineConfig(alert_budget=100.0, threshold_smoothing=1.0))
    for i in range(20):
        policy.decide(None, 0, 0.0, float(i))
    assert policy.decide(None, 0, 0.5, 86_400.0 + 1)[0] == 0
    assert policy.budget is not None
    assert policy.budget.threshold_logit is None


def test_forewarn_alerts_prints_one_readable_line() -> None:
    line = format_alert(make_alert())
    assert line == (
        "2024-01-01 00:00 RAISE critical Z1 (ST4000DM000) risk 0.912 (threshold 0.3) · "
        "pending sectors (SMART 197) 64 sectors, +56 in 3 days [a1]"
    )
    assert "\n" not in line
    cleared = format_alert(make_alert(action="clear", reason="device failed", explanations=[]))
    assert cleared.endswith("Z1 (ST4000DM000) · device failed [a1]")


def test_a_version_1_alert_still_reads() -> None:
    old = make_alert(
        schema_version=1,
        threshold=None,
        explanations=[],
        counters_rose=[],
        top_factors=[{"feature": "smart_5_raw", "value": 2.0, "contribution": 1.0}],
    )
    assert "smart_5_raw" in format_alert(old)
    assert Alert.model_fields["schema_version"].default == 2


def test_the_catalogue_file_extends_the_built_in_one(tmp_path: Path) -> None:
    path = tmp_path / "metrics.toml"
    path.write_text('[metrics.fan_rpm]\nname = "fan speed"\nunit = "rpm"\n')
    assert load_catalogue(path).get("fan_rpm") == MetricInfo("fan speed", "rpm")
    assert load_catalogue(None) is SMART
    path.write_text("[metrics.fan_rpm\n")
    with pytest.raises(ConfigError, match=r"FOREWARN_METRIC_CATALOGUE: .* is not TOML"):
        load_catalogue(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalogue(tmp_path / "missing.toml")


def test_one_of_a_unit_is_singular_and_the_expert_score_is_named() -> None:
    one = Explanation(
        feature="smart_5_raw",
        metric="smart_5_raw",
        name="reallocated sectors",
        unit="sectors",
        value=1.0,
    )
    assert describe(one) == "reallocated sectors 1 sector"
    assert describe(one.model_copy(update={"value": 2.0})) == "reallocated sectors 2 sectors"
    assert "expert score" in Explainer(None, window_s=86_400.0).label(EXPERT_FEATURE)
