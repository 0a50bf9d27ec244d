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
from pydantic import SecretStr, ValidationError

from pipeline.engine import FleetModel
from pipeline.engine.schedule import NO_EPOCH
from pipeline.engine.training import HISTORY, models_as_of
from pipeline.errors import SnapshotError
from pipeline.streaming.follow import TopicFollower
from pipeline.streaming.intake import describe_validation_error
from pipeline.streaming.signing import open_snapshot
from pipeline.topics import MODELS, TOPICS_BY_NAME
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
        self.changed = asyncio.Event()
        """Set whenever an epoch closes; waiters clear it before they wait."""
        self._follower = TopicFollower(self.accept, name="models")

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

    @property
    def caught_up(self) -> asyncio.Event:
        """Set once the topic was read up to where it ended when the worker started."""
        return self._follower.caught_up

    async def catch_up(self, timeout_s: float = 60.0) -> None:
        """Wait until everything on the topic now has been read (before a lane or a
        trainer is resumed: it needs the versions published up to this moment)."""
        await self._follower.catch_up(timeout_s)

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

        def caught_up() -> None:
            log.info("models_caught_up", groups=sorted(self.history), closed=self.closed)

        await self._follower.follow(
            bootstrap,
            topic,
            partitions=TOPICS_BY_NAME[MODELS].partitions or 1,
            poll_timeout_ms=poll_timeout_ms,
            options=options,
            on_caught_up=caught_up,
        )
