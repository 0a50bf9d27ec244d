"""The worker's I/O-free parts: intake, line protocol, signing, sink retries."""

from __future__ import annotations

import asyncio
import copyreg
import io
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from pipeline import topics
from pipeline.engine.state import DeviceState
from pipeline.errors import SnapshotError
from pipeline.streaming.intake import MAX_INPUT_BYTES, Rejection, decode
from pipeline.streaming.lineprotocol import line, nanoseconds, prediction_line, tag
from pipeline.streaming.processor import Applied, DeviceRecord
from pipeline.streaming.signing import open_snapshot, seal, sign_snapshot, unseal
from pipeline.streaming.sink import InfluxSink, SinkFullError
from schemas import Factor, Prediction, Telemetry

KEY = SecretStr("test-key")
READING = {
    "device_id": "Z1",
    "ts": "2013-04-10T00:00:00Z",
    "device_type": "ST3000",
    "metrics": {"smart_5_raw": 1.0},
}


def encoded(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_valid_reading_decodes() -> None:
    message = decode(topics.TELEMETRY, b"Z1", encoded(READING))
    assert isinstance(message, Telemetry)
    assert message.metrics == {"smart_5_raw": 1.0}


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        (b"{not json", "invalid Telemetry"),
        (encoded({**READING, "metrics": {"smart_5_raw": "x"}}), "metrics.smart_5_raw"),
        (encoded(READING).replace(b"1.0", b"NaN"), "metrics.smart_5_raw"),
        (encoded({**READING, "colour": "red"}), "colour"),
        (encoded({**READING, "ts": "2013-04-10T00:00:00"}), "ts"),
        (b"x" * (MAX_INPUT_BYTES + 1), "exceeds"),
        (None, "empty message"),
    ],
)
def test_bad_input_is_rejected_with_reason(value: bytes | None, reason_part: str) -> None:
    outcome = decode(topics.TELEMETRY, b"Z1", value)
    assert isinstance(outcome, Rejection)
    assert reason_part in outcome.reason


def test_key_must_match_device() -> None:
    outcome = decode(topics.TELEMETRY, b"other", encoded(READING))
    assert isinstance(outcome, Rejection)
    assert "does not match" in outcome.reason


@given(st.binary(max_size=500))
def test_decode_never_raises(value: bytes) -> None:
    decode(topics.TELEMETRY, None, value)


def test_line_protocol_escapes_and_is_exact() -> None:
    ts = datetime(2013, 4, 10, 0, 0, 0, 123456, tzinfo=UTC)
    assert nanoseconds(ts) == 1365552000123456000
    assert tag("a b,c=d") == r"a\ b\,c\=d"
    rendered = line("m", {"b": "2", "a": "x y"}, {"f": 1.5, "n": 3, "s": 'q"'}, ts)
    assert rendered == r'm,a=x\ y,b=2 f=1.5,n=3i,s="q\"" 1365552000123456000'


def test_prediction_line_is_keyed_by_device_and_reading_time() -> None:
    prediction = Prediction(
        device_id="Z 1",
        device_type="ST3000",
        group="ST3000",
        ts=datetime(2013, 4, 10, tzinfo=UTC),
        failure_probability=0.5,
        anomaly_score=0.25,
        risk=0.4,
        top_factors=[Factor(feature="smart_5_raw.rise", value=2.0, contribution=0.3)],
        model_version=2,
    )
    rendered = prediction_line(prediction)
    assert rendered.startswith(r"prediction,device_id=Z\ 1,device_type=ST3000,group=ST3000 ")
    assert rendered.endswith(" 1365552000000000000")
    assert 'top_factor="smart_5_raw.rise"' in rendered


def test_sealed_pickles_round_trip_and_refuse_tampering() -> None:
    sealed = seal(KEY, {"a": 1})
    assert unseal(KEY, sealed) == {"a": 1}
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SnapshotError):
        unseal(KEY, tampered)
    with pytest.raises(SnapshotError):
        unseal(SecretStr("other-key"), sealed)


def test_snapshots_are_signed_and_checked() -> None:
    snapshot = sign_snapshot(KEY, "ST3000", 3, {"weights": [1, 2]}, examples_seen=10)
    assert open_snapshot(KEY, snapshot) == {"weights": [1, 2]}
    evil = snapshot.model_copy(update={"payload": pickle.dumps({"weights": [6, 6]})})
    with pytest.raises(SnapshotError, match="bad signature"):
        open_snapshot(KEY, evil)
    with pytest.raises(SnapshotError, match="unsigned"):
        open_snapshot(KEY, snapshot.model_copy(update={"signature": ""}))
    bumped = snapshot.model_copy(update={"version": 4})
    with pytest.raises(SnapshotError):
        open_snapshot(KEY, bumped)


class FlakyWriter:
    """Fails a given number of times, then stores what it is given."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("influx down")
        self.stored: list[str] = []
        self.calls = 0

    async def __call__(self, lines: list[str]) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        self.stored.extend(lines)


def test_sink_retries_until_written_and_loses_nothing() -> None:
    writer = FlakyWriter(failures=3)
    sink = InfluxSink(writer, batch_size=2, max_buffered=10, first_backoff_s=0.0)
    sink.add([f"m v={i}i {i}" for i in range(5)])
    with capture_logs() as logs:
        asyncio.run(sink.flush())
    assert writer.stored == [f"m v={i}i {i}" for i in range(5)]
    assert sink.buffered == 0
    assert sink.write_errors == 3
    assert [entry["event"] for entry in logs].count("influx_write_failed") == 3


def test_sink_refuses_to_grow_past_its_bound() -> None:
    sink = InfluxSink(FlakyWriter(0), batch_size=2, max_buffered=3)
    with pytest.raises(SinkFullError):
        sink.add(["a", "b", "c", "d"])


def test_sink_room_waits_at_half_its_bound_until_a_flush_takes_the_points() -> None:
    async def run() -> tuple[bool, bool, list[str]]:
        writer = FlakyWriter(failures=0)
        sink = InfluxSink(writer, batch_size=10, max_buffered=8)
        sink.add(["a", "b", "c"])
        await asyncio.wait_for(sink.room(), timeout=5)  # 3 of 8: room at once
        sink.add(["d"])
        waiting = asyncio.ensure_future(sink.room())  # 4 of 8: half full
        await asyncio.sleep(0)
        blocked = not waiting.done()
        await sink.flush()
        await asyncio.wait_for(waiting, timeout=5)
        return blocked, waiting.done(), writer.stored

    blocked, released, stored = asyncio.run(run())
    assert blocked
    assert released
    assert stored == ["a", "b", "c", "d"]


class PickyWriter:
    """Refuses (like a 400) any batch holding a line that starts with ``bad``."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.calls = 0

    async def __call__(self, lines: list[str]) -> None:
        self.calls += 1
        bad = [line for line in lines if line.startswith("bad")]
        if bad:
            raise ValueError(f"unable to parse '{bad[0]}'")
        self.stored.extend(lines)


@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_a_refused_point_is_isolated_and_the_rest_stored(bad_at: list[bool]) -> None:
    writer = PickyWriter()
    sink = InfluxSink(
        writer, batch_size=16, max_buffered=100, is_permanent=lambda e: isinstance(e, ValueError)
    )
    lines = [("bad" if bad else "m") + f" v={i}i {i}" for i, bad in enumerate(bad_at)]
    sink.add(lines)
    asyncio.run(sink.flush())
    assert writer.stored == [line for line in lines if not line.startswith("bad")]
    refused = sink.take_refused()
    assert [point for point, _ in refused] == [line for line in lines if line.startswith("bad")]
    assert all(reason.startswith("unable to parse") for _, reason in refused)
    assert sink.points_written == len(writer.stored)
    assert sink.points_refused == len(refused)
    assert sink.buffered == 0


def test_refused_points_are_told_from_outages() -> None:
    from influxdb_client.rest import ApiException

    from pipeline.streaming.influx_writer import is_permanent

    assert [is_permanent(ApiException(status=s)) for s in (400, 413, 422)] == [True] * 3
    assert [is_permanent(ApiException(status=s)) for s in (401, 500, 503)] == [False] * 3
    assert not is_permanent(ConnectionError("refused"))


def _device_record() -> DeviceRecord:
    state = DeviceState("d", "t", "g")
    state.add_metrics(["a", "b"])
    state.pend_ts.extend([1.5, 2.5])
    state.pend_width.extend([3, 3])
    state.pend_flag.extend([0, 1])
    state.pend_count.extend([1, 70_000])
    state.pend_key.extend([4, 2**32 - 1])
    state.pend_vec.extend([0.25] * 6)
    return DeviceRecord(
        state,
        {"telemetry": Applied(1, 42, 1.7e9, 3)},
        datetime(2013, 4, 10, 0, 0, 0, 999_999, tzinfo=UTC),
        None,
        datetime(2100, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    )


def test_a_device_record_round_trips_exactly() -> None:
    record = _device_record()
    again = unseal(KEY, seal(KEY, record))
    assert again == record
    assert again.last_reading.tzinfo is UTC
    assert again.suspect.tzinfo is UTC
    assert again.state.pend_count.typecode == "I"
    assert list(again.state.pend_count) == [1, 70_000]


class _OlderPickler(pickle.Pickler):
    """Pickles as a worker did before arrays went as bytes and times as microseconds."""

    def reducer_override(self, obj: object) -> Any:
        if isinstance(obj, DeviceState):
            fields = tuple(getattr(obj, name) for name in DeviceState.__slots__)
            return (copyreg.__newobj__, (DeviceState,), fields)  # type: ignore[attr-defined]
        if isinstance(obj, DeviceRecord):
            return (
                DeviceRecord,
                (obj.state, obj.offsets, obj.last_reading, obj.failure, obj.suspect),
            )
        return NotImplemented


def test_a_device_record_written_by_an_older_worker_still_reads() -> None:
    record = _device_record()
    buffer = io.BytesIO()
    _OlderPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(record)
    older = buffer.getvalue()
    assert b"_restored" not in older  # really the old layout
    assert unseal(KEY, seal(KEY, pickle.loads(older))) == record
