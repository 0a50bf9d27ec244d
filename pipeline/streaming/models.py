"""Follow the compacted ``models`` topic: verified snapshots and closed epochs.

Every worker reads the topic from the beginning and keeps, per group, the last few
verified versions (a lane restored from its changelog may need an older one than the
newest) and, per ``training-examples`` partition, the newest epoch its trainer closed.
A lane waits (``pipeline/engine/schedule.py``) until :attr:`ModelRegistry.closed`
reaches the epoch it needs, then installs :meth:`ModelRegistry.models_as_of` that epoch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr, ValidationError

from pipeline.engine import FleetModel
from pipeline.engine.schedule import NO_EPOCH
from pipeline.engine.training import HISTORY, models_as_of
from pipeline.errors import SnapshotError
from pipeline.streaming.intake import describe_validation_error
from pipeline.streaming.signing import open_snapshot
from schemas import EpochClosed, ModelSnapshot

log = structlog.get_logger(__name__)

EPOCH_KEY_PREFIX = b"\x00epochs:"
"""Key of a training partition's ``EpochClosed`` record (no group label has a NUL)."""


def epoch_key(training_partition: int) -> bytes:
    """The ``models`` key of ``training_partition``'s closed-epoch record."""
    return EPOCH_KEY_PREFIX + str(training_partition).encode()


class ModelRegistry:
    """Verified models by group and the epochs every trainer has closed.

    ``training_partitions`` is the partition count of ``training-examples``: an epoch
    is closed for the fleet once the trainer of every one of them has closed it.
    """

    def __init__(self, key: SecretStr, training_partitions: int) -> None:
        self._key = key
        self.training_partitions = training_partitions
        self.history: dict[str, deque[FleetModel]] = {}
        self.closed_by: dict[int, int] = {}
        self.resume_by: dict[int, int] = {}
        """Per ``training-examples`` partition: the first offset its published state does
        not cover (``EpochClosed.resume_offset``)."""
        self.refused = 0
        self.caught_up = asyncio.Event()
        self.changed = asyncio.Event()
        """Set whenever an epoch closes; waiters clear it before they wait."""
        self._consumer: AIOKafkaConsumer | None = None
        self._read = asyncio.Condition()

    @property
    def closed(self) -> int:
        """Every epoch up to this one is closed by every trainer."""
        if len(self.closed_by) < self.training_partitions:
            return NO_EPOCH
        return min(self.closed_by.values())

    def latest(self, group: str) -> FleetModel | None:
        """Newest verified version of ``group``."""
        versions = self.history.get(group)
        return versions[-1] if versions else None

    def models_as_of(self, epoch: int) -> list[FleetModel]:
        """Per group, the newest version trained through ``epoch`` at most."""
        return models_as_of(self.history, epoch)

    def accept(self, raw: bytes | None, key: bytes | None = None) -> bool:
        """Take one ``models`` message; refuse (and log) anything doubtful."""
        if raw is None:
            return False
        if key is not None and key.startswith(EPOCH_KEY_PREFIX):
            return self._epoch(raw)
        try:
            snapshot = ModelSnapshot.model_validate_json(raw)
        except ValidationError as error:
            self._refuse("invalid snapshot message", describe_validation_error(error))
            return False
        try:
            model = open_snapshot(self._key, snapshot)
        except SnapshotError as error:
            self._refuse(str(error), group=snapshot.group, version=snapshot.version)
            return False
        if not isinstance(model, FleetModel) or model.group != snapshot.group:
            self._refuse("snapshot payload is not this group's fleet model", group=snapshot.group)
            return False
        versions = self.history.setdefault(snapshot.group, deque(maxlen=HISTORY))
        if versions and versions[-1].version >= model.version:
            return False
        versions.append(model)
        log.info("model_received", group=snapshot.group, version=model.version, epoch=model.epoch)
        return True

    def _epoch(self, raw: bytes) -> bool:
        try:
            record = EpochClosed.model_validate_json(raw)
        except ValidationError as error:
            self._refuse("invalid epoch record", describe_validation_error(error))
            return False
        partition = record.training_partition
        if record.closed_through <= self.closed_by.get(partition, NO_EPOCH):
            return False
        before = self.closed
        self.closed_by[partition] = record.closed_through
        if record.resume_offset is not None:
            self.resume_by[partition] = record.resume_offset
        if self.closed != before:
            self.changed.set()
        return True

    async def catch_up(self, timeout_s: float = 60.0) -> None:
        """Wait until everything on the topic now has been read (before a lane or a
        trainer is resumed: it needs the versions published up to this moment)."""
        consumer = self._consumer
        if consumer is None:
            await self.caught_up.wait()
            consumer = self._consumer
        assert consumer is not None
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)

        async def read_up() -> bool:
            return all([await consumer.position(tp) >= end[tp] for tp in partitions])

        async with self._read:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not await read_up():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    log.warning("models_catch_up_timeout", timeout_s=timeout_s)
                    return
                try:
                    await asyncio.wait_for(self._read.wait(), remaining)
                except TimeoutError:
                    continue

    def _refuse(self, reason: str, detail: str = "", **context: object) -> None:
        self.refused += 1
        log.error("model_snapshot_refused", reason=reason, detail=detail, **context)

    async def follow(
        self,
        bootstrap: str,
        topic: str,
        *,
        poll_timeout_ms: int = 500,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Read the ``models`` topic from the beginning, forever, on every worker."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
            **(options or {}),
        )
        await consumer.start()
        try:
            await consumer.topics()  # loads cluster metadata, so partitions are known
            partitions = [
                TopicPartition(topic, p)
                for p in sorted(consumer.partitions_for_topic(topic) or {0})
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            self._consumer = consumer
            while True:
                batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
                for records in batches.values():
                    for record in records:
                        self.accept(record.value, record.key)
                async with self._read:
                    self._read.notify_all()
                positions = [await consumer.position(tp) for tp in partitions]
                if not self.caught_up.is_set() and all(
                    position >= end[tp] for position, tp in zip(positions, partitions, strict=True)
                ):
                    self.caught_up.set()
                    log.info("models_caught_up", groups=sorted(self.history), closed=self.closed)
        finally:
            await consumer.stop()
