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

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from pipeline.engine import EngineConfig, FleetModel
from pipeline.engine.schedule import NO_EPOCH
from pipeline.engine.training import EpochTrainer, epoch_of
from pipeline.partitioner import partition_for
from pipeline.streaming.counters import Counters
from pipeline.streaming.models import ModelRegistry
from schemas import LaneWatermark, TrainingExample

log = structlog.get_logger(__name__)

Event = Any
LANE_KEY_PREFIX = b"\x00lane:"
"""Key of a ``LaneWatermark`` on ``training-examples`` (no group label has a NUL)."""

Publish = Callable[[int, list[FleetModel], int, dict[str, int]], Awaitable[None]]
"""``publish(training_partition, new_models, closed_through, versions)``: durable on return."""


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
        self._unacked: dict[int, list[tuple[int, str | None, Event]]] = {}
        """Per partition: (epoch, group or ``None`` for a marker, message)."""

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
        late_before = trainer.late
        if not trainer.add(example):
            self.counters.examples_duplicate += 1
            await self._ack(event)
            return
        if trainer.late != late_before:
            self.counters.examples_late += 1
            log.warning("training_example_late", group=example.group, device_id=example.device_id)
        epoch = epoch_of(trainer.schedule, example)
        if late_before != trainer.late:
            epoch = trainer.closed + 1
        self._unacked.setdefault(partition, []).append((epoch, example.group, event))

    async def on_marker(self, partition: int, event: Event, marker: LaneWatermark) -> None:
        """Note a lane's progress; close and publish every epoch it completes."""
        trainer = self.trainer(partition)
        trainer.mark(marker.partition, marker.complete_through, idle=marker.idle)
        if marker.idle or marker.complete_through <= trainer.closed:
            await self._ack(event)
        else:
            self._unacked.setdefault(partition, []).append((marker.complete_through, None, event))
        await self.close(partition)

    async def close(self, partition: int) -> None:
        """Close what every lane has completed; publish; acknowledge what it covered."""
        trainer = self.trainer(partition)
        through = trainer.closable()
        if through <= trainer.closed:
            return
        models = trainer.close_through(through)
        versions = {group: t.version for group, t in sorted(trainer.trainers.items())}
        await self._publish(partition, models, through, versions)
        for model in models:
            log.info("model_published", group=model.group, version=model.version, epoch=through)
        # An example is acknowledged once a published version of its group contains it
        # (until a group's first version, a restarted trainer must read them again); a
        # marker once its epoch is closed.
        keep = []
        for epoch, group, event in self._unacked.get(partition, []):
            covered = trainer.published_through(group) if group is not None else through
            if epoch <= covered:
                await self._ack(event)
            else:
                keep.append((epoch, group, event))
        self._unacked[partition] = keep

    def forget(self, partitions: set[int]) -> None:
        """Another worker holds these partitions now (a rebalance)."""
        for partition in partitions:
            self.trainers.pop(partition, None)
            self._unacked.pop(partition, None)
