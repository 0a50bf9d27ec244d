"""Records: a device's newest record is the staged one, then the cached, then the table's."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from pipeline.engine import EngineConfig
from pipeline.engine.lane import Lane
from pipeline.errors import SnapshotError
from pipeline.streaming.checkpoint import Checkpointer, Staged
from pipeline.streaming.models import ModelRegistry
from pipeline.streaming.processor import DeviceRecord
from pipeline.streaming.records import DEVICES, LANES, Records
from pipeline.streaming.scoring import LaneRecord
from pipeline.streaming.signing import seal

KEY = SecretStr("test-signing-key")


def records_over(tables: dict[str, dict[bytes, bytes]]) -> tuple[Records, Checkpointer]:
    checkpoint = Checkpointer(ports=None)  # type: ignore[arg-type]  # never committed here
    registry = ModelRegistry(KEY, 1)
    return Records(tables, checkpoint, registry, KEY), checkpoint


def test_staged_wins_over_cached_and_cached_over_stored() -> None:
    stored, cached, staged = DeviceRecord(), DeviceRecord(), DeviceRecord()
    tables: dict[str, dict[bytes, bytes]] = {DEVICES: {b"d1": seal(KEY, stored)}, LANES: {}}
    records, checkpoint = records_over(tables)

    first = records.device(b"d1")
    assert isinstance(first, DeviceRecord)
    assert first is not stored  # unpickled from the table
    assert records.device(b"d1") is first  # then kept in the cache
    records.written(DEVICES, b"d1", cached)
    assert records.device(b"d1") is cached
    checkpoint.stage(DEVICES, b"d1", Staged(staged, seal(KEY, staged), "event"))
    assert records.device(b"d1") is staged
    records.forget()
    checkpoint.pending.states.clear()
    assert records.device(b"d1") is not cached  # read from the table again
    assert records.device(b"unknown") is None
    assert records.device(b"\xff") is None  # not a device id: intake rejects the message


def test_a_tampered_stored_record_is_refused_before_unpickling() -> None:
    sealed = bytearray(seal(KEY, DeviceRecord()))
    sealed[-1] ^= 1
    records, _ = records_over({DEVICES: {b"d1": bytes(sealed)}, LANES: {}})
    with pytest.raises(SnapshotError):
        records.device(b"d1")


def test_a_lane_record_from_before_resume_offsets_still_reads() -> None:
    lane = Lane(EngineConfig(), 0)
    tables: dict[str, Any] = {DEVICES: {}, LANES: {b"0": seal(KEY, lane), b"1": None}}
    tables[LANES][b"1"] = seal(KEY, LaneRecord(Lane(EngineConfig(), 1), {"telemetry": 5}))
    records, _ = records_over(tables)

    old = records.lane(0)
    assert old is not None
    assert old.resume is None  # no guard for records written before resume offsets
    new = records.load_lane(1)
    assert new is not None
    assert new.resume == {"telemetry": 5}
    assert records.lane(2) is None
