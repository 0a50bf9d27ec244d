"""The worker's pure core: one message in, record and outputs out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline import topics
from pipeline.cli.engine_options import engine_config_for
from pipeline.engine.lane import Lane
from pipeline.streaming.processor import DeviceRecord, Processor, Source
from schemas import FailureEvent, Telemetry

T0 = datetime(2013, 4, 10, tzinfo=UTC)


def reading(day: int, value: float = 0.0) -> bytes:
    return (
        Telemetry(
            device_id="d1",
            ts=T0 + timedelta(days=day),
            device_type="ST3000",
            metrics={"smart_5_raw": value, "smart_9_raw": 100.0 + day},
        )
        .model_dump_json()
        .encode()
    )


def failure(day: int) -> bytes:
    return FailureEvent(device_id="d1", ts=T0 + timedelta(days=day)).model_dump_json().encode()


def run(messages: list[tuple[str, bytes]]) -> tuple[DeviceRecord | None, list[float], int]:
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    record: DeviceRecord | None = None
    scores: list[float] = []
    failures = 0
    offsets = {topics.TELEMETRY: 0, topics.FAILURES: 0}
    for topic, value in messages:
        outcome = processor.handle(Source(topic, 0, offsets[topic]), b"d1", value, record)
        offsets[topic] += 1
        assert outcome.rejected is None
        record = outcome.record
        scores += [p.anomaly_score for p in outcome.predictions]
        failures += len(outcome.failures)
    return record, scores, failures


def test_a_failure_read_before_its_readings_waits_for_them() -> None:
    in_order = [(topics.TELEMETRY, reading(day, value=day)) for day in range(6)]
    in_order += [(topics.FAILURES, failure(5)), (topics.TELEMETRY, reading(6))]
    early = [in_order[0], in_order[-2], *in_order[1:-2], in_order[-1]]
    expected, expected_scores, _ = run(in_order)
    record, scores, failures = run(early)
    assert scores == expected_scores  # the readings it overtook scored as in time order
    assert failures == 1  # applied once, when the partition moved past it
    assert record == expected
    assert record is not None
    assert record.state is not None
    assert record.state.n == 1  # the reading after it started a new life


def test_a_failure_after_the_newest_reading_waits_for_the_next_one() -> None:
    messages = [(topics.TELEMETRY, reading(day, value=day)) for day in range(3)]
    held, _, failures = run([*messages, (topics.FAILURES, failure(2))])
    assert failures == 0
    assert held is not None
    assert held.failure is None
    messages += [(topics.FAILURES, failure(2)), (topics.TELEMETRY, reading(3, value=0.0))]
    record, _, failures = run(messages)
    assert failures == 1
    assert record is not None
    assert record.failure is None
    assert record.state is not None
    assert record.state.n == 1  # the history was reset before the new reading


def test_a_late_failure_is_applied_at_once() -> None:
    messages = [(topics.TELEMETRY, reading(day, value=day)) for day in range(4)]
    record, _, failures = run([*messages, (topics.FAILURES, failure(1))])
    assert failures == 1
    assert record is not None
    assert record.state is not None
    assert record.state.pending == 0  # labelled at once


def test_a_replayed_message_is_skipped() -> None:
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    first = processor.handle(Source(topics.TELEMETRY, 0, 7), b"d1", reading(0), None)
    again = processor.handle(Source(topics.TELEMETRY, 0, 7), b"d1", reading(0), first.record)
    assert again.duplicate
    assert again.predictions == []
