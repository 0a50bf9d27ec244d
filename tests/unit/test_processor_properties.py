"""Properties of the worker's pure core over arbitrary valid message sequences.

Whatever valid messages arrive, in whatever order of timestamps, with whatever ids,
metric names and finite values the schemas allow: no exception, no internal error,
every number finite, every output valid against its own published schema, every
refused message leaves the device's state as it was, and every tag written to
InfluxDB reads back exactly (checked against a model of InfluxDB 2.7's parser).
"""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import topics
from pipeline.cli.engine_options import engine_config_for
from pipeline.engine.lane import Lane
from pipeline.streaming.lineprotocol import alert_line, prediction_line, tag
from pipeline.streaming.processor import DeviceRecord, Processor, Source
from schemas import (
    Alert,
    FailureEvent,
    Feedback,
    Prediction,
    Telemetry,
    TrainingExample,
    Verdict,
)

text = st.characters(exclude_categories=["Cs"], min_codepoint=0x20)
adversarial = st.sampled_from(["\\", ",", "=", " ", '"', "'", "é", "😀", "\\\\", "\\,"])
ids = (
    st.lists(st.one_of(text, adversarial), min_size=1, max_size=12)
    .map("".join)
    .filter(lambda s: 0 < len(s) <= 200 and not s.endswith("\\"))
)
metric_names = st.one_of(
    st.sampled_from(["smart_5_raw", "smart_9_raw", "temp", "trip_count"]),
    st.text(alphabet=text, min_size=1, max_size=12),
)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1.0, 8.0]),
)
times = st.one_of(
    st.datetimes(min_value=datetime(1677, 9, 22), max_value=datetime(2262, 4, 10)),
    st.integers(0, 400).map(lambda d: datetime(2024, 1, 1) + timedelta(hours=6 * d)),
).map(lambda t: t.replace(tzinfo=UTC))


@st.composite
def sequences(draw: st.DrawFn) -> list[tuple[str, Telemetry | FailureEvent | Feedback]]:
    devices = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
    types = draw(st.lists(ids, min_size=1, max_size=2))
    out: list[tuple[str, Telemetry | FailureEvent | Feedback]] = []
    for _ in range(draw(st.integers(1, 40))):
        device = draw(st.sampled_from(devices))
        kind = draw(st.sampled_from(["t"] * 8 + ["f", "v"]))
        ts = draw(times)
        if kind == "t":
            metrics = draw(st.dictionaries(metric_names, values, max_size=6))
            tags = draw(st.dictionaries(st.sampled_from(["site", "rack"]), ids, max_size=2))
            message: Telemetry | FailureEvent | Feedback = Telemetry(
                device_id=device,
                ts=ts,
                device_type=draw(st.sampled_from(types)),
                metrics=metrics,
                tags=tags,
            )
            out.append((topics.TELEMETRY, message))
        elif kind == "f":
            out.append((topics.FAILURES, FailureEvent(device_id=device, ts=ts)))
        else:
            verdict: Verdict = draw(st.sampled_from(["confirmed", "false_alarm", "repaired"]))
            message = Feedback(device_id=device, ts=ts, alert_id=draw(ids), verdict=verdict)
            out.append((topics.FEEDBACK, message))
    return out


def influx_tags(line: str) -> dict[str, str]:
    """The tags InfluxDB 2.7 reads from ``line`` (models/points.go: scanTagsValue, unescapeTag)."""
    i = line.index(",")
    tags: dict[str, str] = {}
    while True:
        eq = line.index("=", i + 1)
        key = line[i + 1 : eq]
        j = eq + 1
        while True:
            j += 1
            if line[j] in ", " and line[j - 1] != "\\":
                break
        raw = line[eq + 1 : j]
        for escaped, char in (("\\,", ","), ("\\ ", " "), ("\\=", "=")):
            if char in raw:
                raw = raw.replace(escaped, char)
        tags[key] = raw
        if line[j] == " ":
            return tags
        i = j


@given(ids, ids, ids)
def test_tags_read_back_exactly(device_id: str, device_type: str, group: str) -> None:
    line = f"m,a={tag(device_id)},b={tag(device_type)},c={tag(group)} v=1i 0"
    assert influx_tags(line) == {"a": device_id, "b": device_type, "c": group}


def test_a_trailing_backslash_is_refused_by_the_line_writer() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        tag("C:\\")


def valid(model: type[Prediction | Alert | TrainingExample], obj: object) -> None:
    assert isinstance(obj, model)
    model.model_validate_json(obj.model_dump_json())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequences())
def test_any_valid_sequence_is_handled_without_error(
    sequence: list[tuple[str, Telemetry | FailureEvent | Feedback]],
) -> None:
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    records: dict[str, DeviceRecord] = {}
    offsets = dict.fromkeys((topics.TELEMETRY, topics.FAILURES, topics.FEEDBACK), 0)
    for topic, message in sequence:
        key = message.device_id.encode()
        before = records.get(message.device_id)
        frozen = pickle.dumps(before.state) if before is not None else None
        outcome = processor.handle(
            Source(topic, 0, offsets[topic]), key, message.model_dump_json().encode(), before
        )
        offsets[topic] += 1
        assert not outcome.internal_error, outcome.rejected
        if outcome.rejected is not None:
            reason = outcome.rejected.reason
            assert reason.startswith(("out of order", "from the future")), reason
            if before is not None:
                assert pickle.dumps(before.state) == frozen
        else:
            expected = 1 if topic == topics.TELEMETRY else 0
            assert len(outcome.predictions) == expected
        for prediction in outcome.predictions:
            valid(Prediction, prediction)
            assert influx_tags(prediction_line(prediction))["device_id"] == message.device_id
        for alert in outcome.alerts:
            valid(Alert, alert)
            assert influx_tags(alert_line(alert))["device_id"] == message.device_id
        for example in outcome.examples:
            valid(TrainingExample, example)
            assert all(math.isfinite(v) for v in example.features.values())
        if outcome.record is not None:
            records[message.device_id] = outcome.record
            state = outcome.record.state
            if state is not None:
                assert all(math.isfinite(v) for v in state.vals)
                assert all(math.isfinite(v) for v in state.pend_vec)


def test_an_engine_error_leaves_the_state_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    lane = Lane(engine_config_for("backblaze"), 0)
    scorer = lane.scorer
    processor = Processor(lane)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)

    def reading(day: int) -> bytes:
        value = Telemetry(
            device_id="d1", ts=t0 + timedelta(days=day), device_type="x", metrics={"m": day}
        )
        return value.model_dump_json().encode()

    first = processor.handle(Source(topics.TELEMETRY, 0, 0), b"d1", reading(0), None)
    assert first.record is not None
    assert first.record.state is not None
    frozen = pickle.dumps(first.record)
    real = scorer.on_telemetry

    def half_done(state: object, message: Telemetry) -> object:
        real(state, message)  # type: ignore[arg-type]  # mutates the state it was given
        raise OverflowError("math range error")

    monkeypatch.setattr(scorer, "on_telemetry", half_done)
    failed = processor.handle(Source(topics.TELEMETRY, 0, 1), b"d1", reading(1), first.record)
    assert failed.internal_error
    assert failed.rejected is not None
    assert failed.rejected.reason == "internal error: OverflowError: math range error"
    assert failed.record is None
    assert pickle.dumps(first.record) == frozen
