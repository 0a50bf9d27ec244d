"""Message models: valid messages round-trip through JSON; invalid ones name their field."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    Alert,
    Factor,
    FailureEvent,
    Feedback,
    ModelSnapshot,
    Prediction,
    Rejected,
    Telemetry,
    TrainingExample,
    message_models,
)

names = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], min_codepoint=0x20),
    min_size=1,
    max_size=40,
)
ids = names.filter(lambda name: not name.endswith("\\"))
"""Device ids, types, groups and tag values: no trailing backslash (line protocol)."""
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
aware_times = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
probabilities = st.floats(min_value=0.0, max_value=1.0)
factors = st.builds(Factor, feature=names, value=finite, contribution=finite)

telemetry = st.builds(
    Telemetry,
    device_id=ids,
    ts=aware_times,
    device_type=ids,
    metrics=st.dictionaries(names, finite, max_size=12),
    tags=st.dictionaries(names, ids, max_size=4),
)


@given(telemetry)
def test_telemetry_round_trips_through_json(message: Telemetry) -> None:
    assert Telemetry.model_validate_json(message.model_dump_json()) == message


@given(telemetry)
def test_timestamps_are_normalised_to_utc(message: Telemetry) -> None:
    assert message.ts.utcoffset() == timedelta(0)


@given(
    st.builds(
        Alert,
        alert_id=ids,
        action=st.sampled_from(["raise", "clear"]),
        device_id=ids,
        device_type=ids,
        group=ids,
        ts=aware_times,
        raised_at=aware_times,
        severity=st.sampled_from(["warning", "critical"]),
        risk=probabilities,
        failure_probability=probabilities,
        anomaly_score=probabilities,
        top_factors=st.lists(factors, max_size=5),
        model_version=st.integers(min_value=0, max_value=10**9),
        reason=st.text(max_size=50),
    )
)
def test_alert_round_trips_through_json(alert: Alert) -> None:
    assert Alert.model_validate_json(alert.model_dump_json()) == alert


@given(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=30)))
def test_rejected_keeps_original_bytes_exactly(value: bytes, key: bytes | None) -> None:
    envelope = Rejected(
        source_topic="telemetry",
        partition=0,
        offset=7,
        key=key,
        value=value,
        reason="x",
        rejected_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert Rejected.model_validate_json(envelope.model_dump_json()).value == value


def test_other_messages_round_trip() -> None:
    ts = datetime(2013, 4, 10, tzinfo=UTC)
    messages = [
        FailureEvent(device_id="d", ts=ts, device_type="m"),
        Feedback(device_id="d", ts=ts, alert_id="a1", verdict="false_alarm"),
        Prediction(
            device_id="d",
            device_type="m",
            group="m",
            ts=ts,
            failure_probability=0.2,
            anomaly_score=0.1,
            risk=0.15,
            top_factors=[Factor(feature="smart_5_raw.delta", value=3.0, contribution=0.4)],
            model_version=3,
        ),
        TrainingExample(
            group="m",
            device_id="d",
            ts=ts,
            features={"a": 1.0},
            label=True,
            weight=1.0,
            source="failure",
        ),
        ModelSnapshot(group="m", version=1, created_at=ts, examples_seen=5, payload=b"\x80\x05"),
    ]
    for message in messages:
        assert type(message).model_validate_json(message.model_dump_json()) == message


VALID = {
    "device_id": "Z1",
    "ts": "2013-04-10T00:00:00Z",
    "device_type": "ST3000",
    "metrics": {"smart_5_raw": 1},
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ts": "2013-04-10T00:00:00"}, "ts"),
        ({"metrics": {"smart_5_raw": "1"}}, "metrics.smart_5_raw"),
        ({"metrics": {"smart_5_raw": True}}, "metrics.smart_5_raw"),
        ({"device_id": ""}, "device_id"),
        ({"device_id": "a\nb"}, "device_id"),
        ({"device_id": "x" * 201}, "device_id"),
        ({"metrics": {f"m{i}": 1.0 for i in range(513)}}, "metrics"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_telemetry_names_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Telemetry.model_validate_json(json.dumps({**VALID, **change}))
    assert field in {
        ".".join(str(part) for part in error["loc"]) for error in caught.value.errors()
    }


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_metrics_are_rejected(literal: str) -> None:
    raw = json.dumps(VALID).replace('"smart_5_raw": 1', f'"smart_5_raw": {literal}')
    with pytest.raises(ValidationError) as caught:
        Telemetry.model_validate_json(raw)
    assert caught.value.errors()[0]["loc"] == ("metrics", "smart_5_raw")


@given(st.sampled_from([math.nan, math.inf, -math.inf]))
def test_non_finite_python_values_are_rejected(value: float) -> None:
    with pytest.raises(ValidationError):
        Telemetry(device_id="d", ts=datetime.now(UTC), device_type="t", metrics={"m": value})


def test_messages_are_immutable() -> None:
    message = Telemetry.model_validate_json(json.dumps(VALID))
    with pytest.raises(ValidationError):
        message.device_id = "other"  # type: ignore[misc]


def test_schema_export_writes_one_file_per_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import _register_commands, app

    _register_commands()
    result = CliRunner().invoke(app, ["schemas", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(path.stem.removesuffix(".schema") for path in tmp_path.glob("*.json"))
    assert written == sorted(message_models())
    telemetry_schema = json.loads((tmp_path / "Telemetry.schema.json").read_text())
    assert telemetry_schema["additionalProperties"] is False
