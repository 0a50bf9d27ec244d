"""The producer helper's grouping (pure) and the replay's order of sends (recorded)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import topics
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.partitioner import partition_for
from pipeline.producer import PartitionBatches, TelemetryProducer, encode_batch
from pipeline.replay import Pace, replay
from pipeline.settings import Settings
from pipeline.streaming.intake import decode_many
from schemas import FailureEvent, Telemetry
from schemas.telemetry import MAX_BATCH_BYTES, MAX_BATCH_READINGS, TelemetryBatch

T0 = datetime(2013, 4, 10, tzinfo=UTC)


def reading(device_id: str, n: int = 0, *, metrics: int = 1) -> Telemetry:
    return Telemetry(
        device_id=device_id,
        ts=T0 + timedelta(days=n),
        device_type="ST3000",
        metrics={f"smart_{k}_raw": float(n) for k in range(metrics)},
    )


def encoded(r: Telemetry) -> bytes:
    return r.model_dump_json().encode()


def readings_of(batch: bytes, partition: int, partitions: int) -> list[Telemetry]:
    """Decode a batch as the worker does; every reading must be accepted."""
    decoded = decode_many(topics.TELEMETRY, None, batch, partition=partition, partitions=partitions)
    assert all(isinstance(result, Telemetry) for _, result in decoded), decoded
    assert [index for index, _ in decoded] == list(range(len(decoded)))
    return [result for _, result in decoded if isinstance(result, Telemetry)]


def test_an_encoded_batch_is_a_valid_telemetry_batch() -> None:
    value = encode_batch([encoded(reading("A")), encoded(reading("B", 1))])
    batch = TelemetryBatch.model_validate_json(value)
    assert batch.schema_version == 1
    assert [r["device_id"] for r in batch.readings] == ["A", "B"]  # type: ignore[index,call-overload]


def test_readings_are_grouped_by_the_partition_of_their_device() -> None:
    batches = PartitionBatches(4, max_readings=100, linger_s=60)
    devices = [f"dev-{n}" for n in range(40)]
    for n, device in enumerate(devices):
        assert batches.add(device, encoded(reading(device, n)), now=0.0) == []
    assert batches.pending_readings == 40
    taken = batches.take_all()
    assert batches.pending_readings == 0
    assert [p for p, _ in taken] == sorted({partition_for(d, 4) for d in devices})
    for partition, value in taken:
        got = [r.device_id for r in readings_of(value, partition, 4)]
        assert got == [d for d in devices if partition_for(d, 4) == partition]


def test_a_batch_leaves_when_it_holds_max_readings() -> None:
    batches = PartitionBatches(1, max_readings=3, linger_s=60)
    assert batches.add("A", encoded(reading("A", 0)), now=0.0) == []
    assert batches.add("A", encoded(reading("A", 1)), now=0.0) == []
    ((partition, value),) = batches.add("A", encoded(reading("A", 2)), now=0.0)
    assert partition == 0
    assert [r.ts.day for r in readings_of(value, 0, 1)] == [10, 11, 12]
    assert batches.take(0) is None


def test_a_batch_leaves_before_the_reading_that_would_overflow_its_bytes() -> None:
    one = encoded(reading("A", 0, metrics=20))
    max_bytes = len(encode_batch([one, one])) + 5  # two fit, three do not
    batches = PartitionBatches(1, max_readings=100, max_bytes=max_bytes, linger_s=60)
    assert batches.add("A", one, now=0.0) == []
    assert batches.add("A", one, now=0.0) == []
    ((_, full),) = batches.add("A", one, now=0.0)
    assert len(full) <= max_bytes
    assert len(readings_of(full, 0, 1)) == 2
    assert batches.pending_readings == 1


def test_a_batch_that_waited_linger_s_leaves_with_the_next_send() -> None:
    b = next(f"dev-{n}" for n in range(1, 100) if partition_for(f"dev-{n}", 2) != 0)
    a = next(f"dev-{n}" for n in range(100) if partition_for(f"dev-{n}", 2) == 0)
    batches = PartitionBatches(2, max_readings=100, linger_s=0.5)
    assert batches.add(a, encoded(reading(a)), now=10.0) == []
    assert batches.add(b, encoded(reading(b)), now=10.4) == []
    due = batches.add(b, encoded(reading(b, 1)), now=10.5)
    assert [p for p, _ in due] == [0]
    assert batches.pending_readings == 2
    assert [p for p, _ in batches.take_due(10.9)] == [1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partitions": 0}, "partitions must be at least 1"),
        ({"max_readings": 0}, "max_readings must be 1 to"),
        ({"max_readings": MAX_BATCH_READINGS + 1}, "max_readings must be 1 to"),
        ({"max_bytes": MAX_BATCH_BYTES + 1}, "max_bytes must be"),
        ({"max_bytes": 10}, "max_bytes must be"),
        ({"linger_s": -1.0}, "linger_s must be 0 or more"),
    ],
)
def test_limits_outside_what_the_worker_accepts_are_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PartitionBatches(**{"partitions": 2, **kwargs})


def test_a_reading_too_big_for_any_batch_is_refused_and_nothing_else_is_lost() -> None:
    batches = PartitionBatches(1, max_bytes=200, linger_s=60)
    small = encoded(reading("A"))
    batches.add("A", small, now=0.0)
    with pytest.raises(ValueError, match="does not fit in a batch of at most 200 bytes"):
        batches.add("A", encoded(reading("A", 1, metrics=30)), now=0.0)
    assert batches.take(0) == encode_batch([small])


@settings(max_examples=60, deadline=None)
@given(
    devices=st.lists(st.integers(0, 30), min_size=1, max_size=120),
    partitions=st.integers(1, 6),
    max_readings=st.integers(1, 12),
    room=st.integers(0, 900),
    gaps=st.lists(st.floats(0, 1), min_size=120, max_size=120),
)
def test_every_reading_leaves_once_in_order_on_its_partition_within_the_limits(
    devices: list[int], partitions: int, max_readings: int, room: int, gaps: list[float]
) -> None:
    sent = [reading(f"dev-{d}", n, metrics=1 + d % 7) for n, d in enumerate(devices)]
    biggest = max(len(encoded(r)) for r in sent)
    max_bytes = len(encode_batch([b"x" * biggest])) + room
    batches = PartitionBatches(
        partitions, max_readings=max_readings, max_bytes=max_bytes, linger_s=0.7
    )
    out: list[tuple[int, bytes]] = []
    now = 0.0
    for r, gap in zip(sent, gaps, strict=False):
        now += gap
        out += batches.add(r.device_id, encoded(r), now)
    out += batches.take_all()
    received: dict[int, list[Telemetry]] = {}
    for partition, value in out:
        assert len(value) <= max_bytes
        got = readings_of(value, partition, partitions)
        assert 1 <= len(got) <= max_readings
        received.setdefault(partition, []).extend(got)
    for partition in range(partitions):
        expected = [r for r in sent if partition_for(r.device_id, partitions) == partition]
        assert received.get(partition, []) == expected


# -- the replay's order of sends, recorded without Kafka ------------------------------


class _Sent:
    """What kafka-python's send returns, already acknowledged."""

    is_done = True

    def failed(self) -> bool:
        return False

    def get(self, timeout: float | None = None) -> None:
        return None


class RecordingProducer:
    """Stands in for kafka-python's producer; records every send in order."""

    def __init__(self, partitions: int) -> None:
        self.count = partitions
        self.sends: list[tuple[str, int | None, bytes | None, bytes]] = []

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.count))

    def send(
        self, topic: str, *, value: bytes, key: bytes | None = None, partition: int | None = None
    ) -> _Sent:
        self.sends.append((topic, partition, key, value))
        return _Sent()

    def flush(self, timeout: float | None = None) -> None:
        return None


def test_the_partition_count_comes_from_the_topic_not_the_settings() -> None:
    kafka = RecordingProducer(partitions=7)
    producer = TelemetryProducer(Settings(topic_partitions=2), producer=kafka)
    assert producer.partitions == 7


def test_replay_flushes_a_failures_partition_before_sending_the_failure() -> None:
    partitions = 3
    kafka = RecordingProducer(partitions)
    devices = [f"dev-{n}" for n in range(12)]
    events: list[Telemetry | FailureEvent] = [reading(d, n) for n in range(3) for d in devices]
    doomed = devices[5]
    failure_index = len(events)
    events.append(FailureEvent(device_id=doomed, ts=T0 + timedelta(days=2, hours=1)))
    events += [reading(d, 3) for d in devices if d != doomed]
    stats = replay(Settings(topic_partitions=partitions), events, producer=kafka, batch=True)
    assert (stats.readings, stats.failures) == (47, 1)
    assert stats.batches == sum(1 for topic, *_ in kafka.sends if topic == topics.TELEMETRY)
    assert stats.batches < stats.readings

    failure_at = next(i for i, s in enumerate(kafka.sends) if s[0] == topics.FAILURES)
    _, partition, key, _ = kafka.sends[failure_at]
    assert (partition, key) == (None, doomed.encode())  # keyed: Kafka's own placement
    home = partition_for(doomed, partitions)
    before = [
        r
        for topic, p, _, value in kafka.sends[:failure_at]
        if topic == topics.TELEMETRY and p == home
        for r in readings_of(value, home, partitions)
    ]
    expected = [
        e
        for e in events[:failure_index]
        if isinstance(e, Telemetry) and partition_for(e.device_id, partitions) == home
    ]
    assert before == expected  # every earlier reading of its partition went first
    received = [
        r
        for topic, p, _, value in kafka.sends
        if topic == topics.TELEMETRY and p is not None
        for r in readings_of(value, p, partitions)
    ]
    assert sorted(received, key=lambda r: (r.device_id, r.ts)) == sorted(
        (e for e in events if isinstance(e, Telemetry)), key=lambda r: (r.device_id, r.ts)
    )


def test_replay_single_sends_one_reading_per_message_keyed_by_device() -> None:
    kafka = RecordingProducer(2)
    events = [reading(f"dev-{n}", n) for n in range(5)]
    stats = replay(Settings(), events, producer=kafka, batch=False)
    assert stats.batches == stats.readings == 5
    assert [(p, key) for _, p, key, _ in kafka.sends] == [
        (None, f"dev-{n}".encode()) for n in range(5)
    ]
    assert [json.loads(value)["device_id"] for *_, value in kafka.sends] == [
        f"dev-{n}" for n in range(5)
    ]


@pytest.mark.parametrize("size", [0, MAX_BATCH_READINGS + 1])
def test_replay_refuses_a_batch_size_the_worker_would_refuse(size: int) -> None:
    with pytest.raises(ConfigError, match="--batch-readings must be 1 to"):
        replay(Settings(), [], producer=RecordingProducer(1), batch=True, batch_readings=size)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--single", "--batch-readings", "50"], "give either --single or --batch-readings"),
        (["--batch", "--batch-readings", "0"], "--batch-readings must be 1 to 5000, got 0"),
    ],
)
def test_replay_cli_bad_batching_flags_are_one_line_errors(
    flags: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    data = tmp_path / "readings.csv"
    data.write_text("device_id,ts,device_type,temp\nA,2013-04-10T00:00:00Z,pump,1.0\n")
    monkeypatch.setenv("FOREWARN_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never reached
    monkeypatch.setattr(sys, "argv", ["forewarn", "replay", "csv", str(data), *flags])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("forewarn: error:")
    assert message in lines[0]


def test_a_paced_replay_sends_pending_batches_before_a_long_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka = RecordingProducer(2)
    day0 = [reading(f"dev-{n}", 0) for n in range(10)]
    day1 = [reading(f"dev-{n}", 1) for n in range(10)]
    sent_at_pause: list[int] = []

    def pause(seconds: float) -> None:  # the replay's pacing sleep, recorded instead
        assert seconds > 0
        sent_at_pause.append(
            sum(len(readings_of(v, p, 2)) for t, p, _, v in kafka.sends if p is not None)
        )

    monkeypatch.setattr("pipeline.replay.time.sleep", pause)
    replay(
        Settings(topic_partitions=2),
        [*day0, *day1],
        producer=kafka,
        batch=True,
        pace=Pace(speedup=86_400 / 5.0),  # one day of data per 5 s: a long pause
    )
    assert sent_at_pause[0] == len(day0)  # day 0 left before the pause, not after it
