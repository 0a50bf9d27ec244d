"""Read a whole topic, every partition, forever, outside the consumer group.

Every worker follows ``models`` (the versions and closed epochs) and ``alerts`` (the
published-alerts guard) this way: what any worker wrote there matters to all of them,
whichever partitions they hold. :meth:`TopicFollower.catch_up` waits until everything on
the topic at the moment of the call has been read, which a worker does before it resumes
a lane or a trainer that another worker held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

log = structlog.get_logger(__name__)

Accept = Callable[[bytes | None, bytes | None], object]
"""``accept(value, key)``: take one record."""


class TopicFollower:
    """Hands every record of a topic to ``accept`` (:meth:`follow`); :attr:`caught_up`
    is set once the end the topic had when reading began is reached. ``name``: the
    topic's role, for the log."""

    def __init__(self, accept: Accept, *, name: str) -> None:
        self.name = name
        self.caught_up = asyncio.Event()
        self._accept = accept
        self._consumer: AIOKafkaConsumer | None = None
        self._read = asyncio.Condition()

    async def follow(
        self,
        bootstrap: str,
        topic: str,
        *,
        partitions: int,
        start: dict[int, int] | None = None,
        poll_timeout_ms: int = 500,
        options: dict[str, Any] | None = None,
        on_caught_up: Callable[[], None] | None = None,
    ) -> None:
        """Read ``topic`` (``partitions``: its partition count as the deployment creates
        it; any more that the cluster reports are read too) from ``start`` (per
        partition; missing: its beginning) forever (run it as a task); ``options``: the
        Kafka security settings."""
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
            # The consumer's own cluster metadata may not know the topic yet (aiokafka's
            # ``topics()`` loads a separate copy): a follower that trusted it read
            # partition 0 alone, and the alerts guard missed every other partition.
            known = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(set(range(partitions)) | known)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for tp in tps:
                if start and tp.partition in start:
                    consumer.seek(tp, start[tp.partition])
            end = await consumer.end_offsets(tps)
            self._consumer = consumer
            while True:
                batches = await consumer.getmany(timeout_ms=poll_timeout_ms)
                for records in batches.values():
                    for record in records:
                        self._accept(record.value, record.key)
                async with self._read:
                    self._read.notify_all()
                if not self.caught_up.is_set() and await _reached(consumer, end):
                    self.caught_up.set()
                    if on_caught_up is not None:
                        on_caught_up()
        finally:
            await consumer.stop()

    async def catch_up(self, timeout_s: float = 60.0) -> None:
        """Wait until everything on the topic now has been read (at most ``timeout_s``,
        then log and go on)."""
        consumer = self._consumer
        if consumer is None:
            await self.caught_up.wait()
            consumer = self._consumer
        assert consumer is not None
        end = await consumer.end_offsets(list(consumer.assignment()))
        async with self._read:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while not await _reached(consumer, end):
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    log.warning("catch_up_timeout", topic=self.name, timeout_s=timeout_s)
                    return
                try:
                    await asyncio.wait_for(self._read.wait(), remaining)
                except TimeoutError:
                    continue


async def _reached(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    """Whether ``consumer`` has read every partition of ``end`` up to its offset there."""
    return all([await consumer.position(tp) >= offset for tp, offset in end.items()])
