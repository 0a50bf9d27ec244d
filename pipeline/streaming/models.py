"""Follow the compacted ``models`` topic: verify each snapshot, then hand it to the scorer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr, ValidationError

from pipeline.errors import SnapshotError
from pipeline.streaming.intake import describe_validation_error
from pipeline.streaming.signing import open_snapshot
from schemas import ModelSnapshot

log = structlog.get_logger(__name__)


class ModelRegistry:
    """The newest verified model of every group, and whether the topic has been read up."""

    def __init__(self, key: SecretStr, install: Callable[[Any], None]) -> None:
        self._key = key
        self._install = install
        self.latest: dict[str, tuple[int, Any]] = {}
        self.refused = 0
        self.caught_up = asyncio.Event()

    def accept(self, raw: bytes | None) -> bool:
        """Verify and install one snapshot message; refuse (and log) anything doubtful."""
        if raw is None:
            return False
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
        current = self.latest.get(snapshot.group)
        if current is not None and current[0] >= snapshot.version:
            return False
        self.latest[snapshot.group] = (snapshot.version, model)
        self._install(model)
        log.info("model_installed", group=snapshot.group, version=snapshot.version)
        return True

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
            while True:
                batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
                for records in batches.values():
                    for record in records:
                        self.accept(record.value)
                positions = [await consumer.position(tp) for tp in partitions]
                if not self.caught_up.is_set() and all(
                    position >= end[tp] for position, tp in zip(positions, partitions, strict=True)
                ):
                    self.caught_up.set()
                    log.info("models_caught_up", groups=sorted(self.latest))
        finally:
            await consumer.stop()
