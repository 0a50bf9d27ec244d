"""Remember which alerts are already on the ``alerts`` topic, so a replay never repeats one.

After a crash the worker re-reads input from its last committed offset, and after a
rebalance a worker takes over partitions another worker held (or was killed holding).
Alerts already published in that window are recomputed with the same deterministic id;
this guard, seeded from the tail of the topic at start-up and then following the topic
(every worker reads what every worker publishes), keeps them from going out twice. A
worker catches the guard up (:meth:`PublishedAlerts.catch_up`) before it resumes a lane
another worker held.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import structlog
from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from pipeline.streaming.follow import TopicFollower
from schemas import Alert

log = structlog.get_logger(__name__)


class PublishedAlerts:
    """A bounded, insertion-ordered set of ``(alert_id, action)`` already published."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._capacity = capacity
        self.start: dict[int, int] = {}
        """Per partition, the offset following the topic starts from (where the seeding
        read stopped; missing: the partition's beginning)."""
        self._follower = TopicFollower(lambda value, _key: self._add_raw(value), name="alerts")

    def __contains__(self, alert: object) -> bool:
        return isinstance(alert, Alert) and (alert.alert_id, alert.action) in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, alert: Alert) -> None:
        self._seen[(alert.alert_id, alert.action)] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)

    @classmethod
    def from_topic_tail(
        cls,
        bootstrap: str,
        topic: str,
        *,
        per_partition: int = 20_000,
        timeout_s: float = 30.0,
        options: dict[str, Any] | None = None,
    ) -> PublishedAlerts:
        """Read the last ``per_partition`` alerts of every partition (committed ones only)."""
        guard = cls()
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **(options or {}),
        )
        try:
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                return guard
            consumer.assign(partitions)
            end = consumer.end_offsets(partitions)
            begin = consumer.beginning_offsets(partitions)
            remaining = {tp for tp in partitions if end[tp] > begin[tp]}
            guard.start = {tp.partition: end[tp] for tp in partitions}
            for tp in remaining:
                consumer.seek(tp, max(begin[tp], end[tp] - per_partition))
            give_up = time.monotonic() + timeout_s
            while remaining and time.monotonic() < give_up:
                polled = consumer.poll(timeout_ms=1000)
                if not polled and all(consumer.position(tp) >= end[tp] for tp in remaining):
                    break
                for tp, records in polled.items():
                    for record in records:
                        if record.offset < end[tp]:
                            guard._add_raw(record.value)
                    if consumer.position(tp) >= end[tp]:
                        remaining.discard(tp)
            for tp in remaining:  # timed out: the follower reads the rest
                guard.start[tp.partition] = min(consumer.position(tp), end[tp])
        finally:
            consumer.close()
        log.info("published_alerts_loaded", alerts=len(guard))
        return guard

    async def follow(
        self,
        bootstrap: str,
        topic: str,
        *,
        partitions: int,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Add every alert published from :attr:`start` on, forever (run it as a task);
        ``partitions``: the topic's partition count."""
        await self._follower.follow(
            bootstrap, topic, partitions=partitions, start=self.start, options=options
        )

    async def catch_up(self, timeout_s: float = 60.0) -> None:
        """Wait until every alert on the topic now is in the guard."""
        await self._follower.catch_up(timeout_s)

    def _add_raw(self, raw: bytes | None) -> None:
        if raw is None:
            return
        try:
            self.add(Alert.model_validate_json(raw))
        except ValidationError:
            log.warning("unreadable_alert_on_topic")
