"""A worker's device and lane records: staged, cached, or read from the tables.

The newest record of a device is, in this order: the one staged in the pending
checkpoint (or in a commit still in flight), the one kept unpickled in a bounded cache,
or the sealed pickle in the ``device-state`` table (RocksDB, restored from its
changelog). Lane records (``lane-state``, one per input partition) are read staged or
from their table (not cached) and staged by :meth:`Records.stage_lanes` as a checkpoint
takes its batch. Table
values are pickles sealed with the signing key; the changelog is a Kafka topic, so
every value's HMAC is checked before it is unpickled (``signing.py``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, cast

import structlog
from pydantic import SecretStr

from pipeline.engine.lane import Lane
from pipeline.streaming.checkpoint import Checkpointer, Staged
from pipeline.streaming.models import ModelRegistry
from pipeline.streaming.processor import DeviceRecord
from pipeline.streaming.scoring import LaneRecord, ScoringLoop
from pipeline.streaming.signing import seal, unseal

log = structlog.get_logger(__name__)

DEVICES = "device-state"
"""The table of device records, by ``device_id``."""

LANES = "lane-state"
"""The table of lane records, by input partition."""

CACHE_SIZE = 250_000
"""Device records kept unpickled in memory; the table (RocksDB + changelog) holds all."""


class RecordCache:
    """A bounded least-recently-used map of device records already read from the table."""

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[str, DeviceRecord] = OrderedDict()
        self._capacity = capacity

    def get(self, device_id: str) -> DeviceRecord | None:
        record = self._items.get(device_id)
        if record is not None:
            self._items.move_to_end(device_id)
        return record

    def put(self, device_id: str, record: DeviceRecord) -> None:
        self._items[device_id] = record
        self._items.move_to_end(device_id)
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class Records:
    """Reads and stages the records of one worker.

    ``tables``: the Faust tables by name (:data:`DEVICES`, :data:`LANES`), values sealed
    bytes; ``models``: the registry a restored lane takes its model versions from.
    """

    def __init__(
        self,
        tables: Mapping[str, Any],
        checkpoint: Checkpointer,
        models: ModelRegistry,
        signing_key: SecretStr,
        *,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._tables = tables
        self._checkpoint = checkpoint
        self._models = models
        self._key = signing_key
        self.cache = RecordCache(cache_size)

    def device(self, device_key: bytes) -> DeviceRecord | None:
        """The newest record of device ``device_key`` (``None``: a device never seen, or
        a key that is no device id; intake rejects such a message). Raises
        ``SnapshotError`` for a stored value whose signature does not check."""
        try:
            device_id = device_key.decode()
        except UnicodeDecodeError:
            return None
        staged = self._checkpoint.staged(DEVICES, device_key)
        if staged is not None:
            return cast(DeviceRecord, staged.record)
        record = self.cache.get(device_id)
        if record is not None:
            return record
        sealed = self._tables[DEVICES].get(device_key)
        if sealed is None:
            return None
        record = cast(DeviceRecord, unseal(self._key, sealed))
        self.cache.put(device_id, record)
        return record

    def lane(self, partition: int) -> LaneRecord | None:
        """The stored (or staged) record of lane ``partition``, without installing models."""
        key = str(partition).encode()
        staged = self._checkpoint.staged(LANES, key)
        sealed = staged.sealed if staged is not None else self._tables[LANES].get(key)
        if sealed is None:
            return None
        record = unseal(self._key, sealed)
        if isinstance(record, Lane):  # written before lane records carried resume offsets
            return LaneRecord(record, resume=None)
        return cast(LaneRecord, record)

    def load_lane(self, partition: int) -> LaneRecord | None:
        """Lane ``partition`` restored to score again: its exact model versions installed."""
        record = self.lane(partition)
        if record is None:
            return None
        lane = record.lane
        missing = lane.scorer.restore_models(self._models.models_as_of(lane.installed))
        if missing:
            log.warning("lane_models_missing", partition=partition, groups=missing)
            lane.install(lane.installed, self._models.models_as_of(lane.installed))
        log.info(
            "lane_restored", partition=partition, watermark=lane.watermark, resume=record.resume
        )
        return record

    def stage_lanes(self, scoring: ScoringLoop, input_names: list[str]) -> None:
        """Stage every lane that changed, or whose resume offsets moved, since it was last
        staged. Called by the checkpoint as it takes the batch: the lanes' state is then
        exactly the state after the batch's messages."""
        for partition, slot in scoring.slots.items():
            event = slot.last_event
            if event is None:
                continue
            resume = scoring.resume_offsets(partition, input_names)
            if slot.changed or resume != slot.resume:
                slot.changed = False
                slot.resume = resume
                record = LaneRecord(slot.lane, resume)
                staged = Staged(record, seal(self._key, record), event)
                self._checkpoint.stage(LANES, str(partition).encode(), staged)

    def written(self, table: str, key: bytes, record: Any) -> None:
        """A checkpoint wrote ``record`` to ``table``: keep a device's unpickled."""
        if table == DEVICES:
            self.cache.put(key.decode(), record)

    def forget(self) -> None:
        """Partitions were revoked: read every device from the tables again."""
        self.cache.clear()
