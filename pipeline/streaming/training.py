"""The training side of a worker: epochs of examples in, signed snapshots out.

``training-examples`` carries two kinds of messages: ``TrainingExample`` (keyed by
model group) and ``LaneWatermark`` markers (keyed ``\\0lane:<partition>``, sent by every
lane to every partition after its examples). A worker holds one :class:`EpochTrainer`
per ``training-examples`` partition assigned to it; once every lane has marked an epoch
complete, the trainer learns it, publishes the new versions and an ``EpochClosed``
record to ``models``, and only then acknowledges the messages of the epochs it closed
(a restarted trainer resumes from the published snapshots and re-reads the rest).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import SecretStr

from pipeline.engine import EngineConfig, FleetModel
from pipeline.engine.schedule import NO_EPOCH
from pipeline.engine.training import EpochTrainer, epoch_of
from pipeline.partitioner import partition_for
from pipeline.streaming.counters import Counters
from pipeline.streaming.models import ModelRegistry, epoch_key
from pipeline.streaming.signing import sign_snapshot
from schemas import EpochClosed, LaneWatermark, TrainingExample

log = structlog.get_logger(__name__)

Event = Any
LANE_KEY_PREFIX = b"\x00lane:"
"""Key of a ``LaneWatermark`` on ``training-examples`` (no group label has a NUL)."""

ANY = "\x00any"
"""Group of an unacknowledged message nothing waits on (a duplicate, an idle marker)."""

Publish = Callable[[int, list[FleetModel], int, dict[str, int], int | None], Awaitable[None]]
"""``publish(training_partition, new_models, closed_through, versions, resume_offset)``:
durable on return."""


class SnapshotPublisher:
    """The worker's :data:`Publish`: each new model version as a signed ``ModelSnapshot``
    (keyed by group), then the partition's ``EpochClosed`` record, on ``models``; returns
    once Kafka has acknowledged them all. ``topic``: the Faust ``models`` topic."""

    def __init__(self, topic: Any, signing_key: SecretStr) -> None:
        self._topic = topic
        self._key = signing_key

    async def __call__(
        self,
        partition: int,
        models: list[FleetModel],
        closed: int,
        versions: dict[str, int],
        resume: int | None,
    ) -> None:
        deliveries = []
        for model in models:
            snapshot = sign_snapshot(
                self._key, model.group, model.version, model, model.examples_seen, epoch=model.epoch
            )
            deliveries.append(
                await self._topic.send(
                    key=model.group.encode(), value=snapshot.model_dump_json().encode()
                )
            )
        record = EpochClosed(
            training_partition=partition,
            closed_through=closed,
            versions=versions,
            resume_offset=resume,
        )
        deliveries.append(
            await self._topic.send(
                key=epoch_key(partition), value=record.model_dump_json().encode()
            )
        )
        await asyncio.gather(*deliveries)


def lane_key(partition: int) -> bytes:
    """The key of lane ``partition``'s markers."""
    return LANE_KEY_PREFIX + str(partition).encode()


class TrainingLoop:
    """Epoch trainers of this worker's ``training-examples`` partitions and their unacked
    messages. ``lanes``: the input partition count (markers expected per epoch);
    ``training_partitions``: the partition count of ``training-examples``."""

    def __init__(
        self,
        config: EngineConfig,
        *,
        lanes: int,
        training_partitions: int,
        registry: ModelRegistry,
        counters: Counters,
        publish: Publish,
        ack: Callable[[Event], Awaitable[None]],
    ) -> None:
        self.config = config
        self.lanes = lanes
        self.training_partitions = training_partitions
        self.registry = registry
        self.counters = counters
        self._publish = publish
        self._ack = ack
        self.trainers: dict[int, EpochTrainer] = {}
        self._unacked: dict[int, deque[tuple[int, str | None, Event]]] = {}
        """Per partition, in offset order: (epoch, group or ``None`` for a marker or
        ``ANY`` for a message nothing waits on, message)."""
        self._next_offset: dict[int, int] = {}

    def trainer(self, partition: int) -> EpochTrainer:
        """The epoch trainer of ``training-examples`` partition ``partition``, resumed from
        what its predecessor published."""
        trainer = self.trainers.get(partition)
        if trainer is None:
            trainer = self.trainers[partition] = EpochTrainer(self.config, self.lanes)
            mine = [
                model
                for group in self.registry.history
                if partition_for(group, self.training_partitions) == partition
                and (model := self.registry.latest(group)) is not None
            ]
            trainer.resume(mine, self.registry.closed_by.get(partition, NO_EPOCH))
            if mine:
                log.info("trainer_resumed", partition=partition, closed=trainer.closed)
        return trainer

    async def on_example(self, partition: int, event: Event, example: TrainingExample) -> None:
        """Keep ``example`` for its epoch (acknowledged once that epoch is published)."""
        trainer = self.trainer(partition)
        self._next_offset[partition] = event.message.offset + 1
        late_before = trainer.late
        if not trainer.add(example):
            self.counters.examples_duplicate += 1
            await self._acknowledge(partition, NO_EPOCH, ANY, event)
            return
        if trainer.late != late_before:
            self.counters.examples_late += 1
            log.warning("training_example_late", group=example.group, device_id=example.device_id)
        epoch = epoch_of(trainer.schedule, example)
        if late_before != trainer.late:
            epoch = trainer.closed + 1
        await self._acknowledge(partition, epoch, example.group, event)

    async def on_marker(self, partition: int, event: Event, marker: LaneWatermark) -> None:
        """Note a lane's progress; close and publish every epoch it completes."""
        trainer = self.trainer(partition)
        self._next_offset[partition] = event.message.offset + 1
        trainer.mark(marker.partition, marker.complete_through, idle=marker.idle)
        group = ANY if marker.idle else None
        await self._acknowledge(partition, marker.complete_through, group, event)
        await self.close(partition)

    async def close(self, partition: int) -> None:
        """Close what every lane has completed; publish; acknowledge what it covered."""
        trainer = self.trainer(partition)
        through = trainer.closable()
        if through <= trainer.closed:
            return
        models = trainer.close_through(through)
        versions = {group: t.version for group, t in sorted(trainer.trainers.items())}
        resume = self._first_waiting(partition)
        await self._publish(partition, models, through, versions, resume)
        for model in models:
            log.info("model_published", group=model.group, version=model.version, epoch=through)
        await self._ack_ready(partition)

    async def _acknowledge(
        self, partition: int, epoch: int, group: str | None, event: Event
    ) -> None:
        self._unacked.setdefault(partition, deque()).append((epoch, group, event))
        await self._ack_ready(partition)

    def _waits(self, trainer: EpochTrainer, epoch: int, group: str | None) -> bool:
        if group is None:
            covered = trainer.closed
        elif group == ANY:
            covered = epoch
        else:
            covered = trainer.published_through(group)
        return epoch > covered

    def _first_waiting(self, partition: int) -> int | None:
        """The offset of the oldest message the trainer's state does not cover yet."""
        trainer = self.trainer(partition)
        for epoch, group, event in self._unacked.get(partition, ()):
            if self._waits(trainer, epoch, group):
                return int(event.message.offset)
        return self._next_offset.get(partition)

    async def _ack_ready(self, partition: int) -> None:
        """Acknowledge, in offset order, the messages nothing waits on any more: an example
        once a published version of its group contains it (until a group's first version,
        a restarted trainer must read them again), a marker once its epoch is closed.

        Only the oldest ones, in order: Faust commits past an unacknowledged message when
        the messages after it are acknowledged (its gap check tolerates one missing
        offset), and a restarted trainer would never read that message again."""
        trainer = self.trainer(partition)
        unacked = self._unacked.get(partition)
        while unacked:
            epoch, group, event = unacked[0]
            if self._waits(trainer, epoch, group):
                return
            unacked.popleft()
            await self._ack(event)

    def resume_offset(self, partition: int) -> int | None:
        """The first offset of ``partition`` not acknowledged (``None``: nothing read)."""
        unacked = self._unacked.get(partition)
        if unacked:
            return int(unacked[0][2].message.offset)
        return self._next_offset.get(partition)

    def forget(self, partitions: set[int]) -> None:
        """Another worker holds these partitions now (a rebalance)."""
        for partition in partitions:
            self.trainers.pop(partition, None)
            self._unacked.pop(partition, None)
            self._next_offset.pop(partition, None)
