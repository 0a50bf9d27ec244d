"""Read a partition again from where this worker stopped, after a rebalance gave it back.

When a rebalance revokes a partition and assigns it straight back to the same worker,
Faust (faust-streaming 0.11) can still deliver messages it had fetched before the
rebalance, ahead of the ones it fetches again from the committed offset; its read-offset
filter then drops the re-fetched messages older than the last one delivered. Messages
this worker had not finished (queued behind the model barrier, or in flight) would be
skipped, and the next commit would move past them: lost readings.

:class:`Rewinds` guards each input partition taken back: at revoke the worker notes the
first offset it had not finished; a message delivered later with a higher offset is
dropped unprocessed (not acknowledged) and the partition is sought back to that offset,
until the message at that offset arrives. If Kafka has no message there (a transaction
marker, or retention deleted it), every read from there starts with the same later
message: once it has come first after ``SAME_START`` seeks in a row, it is accepted as
the new start. (A message fetched before a seek can be delivered twice, from two
buffers, so one repeat proves nothing.)

A partition new to this worker (after a restart, or taken over from another) is guarded
the same way when its stored state says where it resumes (``start``: the lane record's
first unfinished offset, written with the state in the checkpoint): Kafka's committed
offset can be ahead of it, since Faust counts offsets it saw skipped as acknowledged, so
the first message delivered above it is dropped and the partition sought back. A
message below it is admitted (the device records skip what was applied already).

The same guard covers a gap inside a partition the worker keeps: messages of one
partition are offsets in a row, so a message more than one past the last one admitted
means something between was skipped (Faust drops a message fetched across a rebalance
of another partition, then filters out its re-fetched copy); the partition is sought
back to the first missing offset in the same way. A transactional producer's commit
markers are such gaps too: each costs a few seeks, then is passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

TopicPartition = tuple[str, int]
SAME_START = 4
"""Seeks in a row after which a partition's first message is taken as its new start."""

Seek = Callable[[str, int, int], Awaitable[None]]
"""``seek(topic, partition, offset)``: fetch ``partition`` of ``topic`` from ``offset``."""
Start = Callable[[str, int], Awaitable[int | None]]
"""``start(topic, partition)``: the first offset the stored state has not finished."""


async def _no_start(topic: str, partition: int) -> int | None:
    return None


@dataclass
class _Pending:
    expected: int
    last_dropped: int | None = None
    repeats: int = 0
    dropped: int = 0


class Rewinds:
    """Per (topic, partition): the offset this worker must read next; see the module doc."""

    def __init__(self, seek: Seek, start: Start = _no_start) -> None:
        self._seek = seek
        self._start = start
        self._pending: dict[TopicPartition, _Pending] = {}
        self._last: dict[TopicPartition, int] = {}

    def revoked(self, positions: dict[TopicPartition, int]) -> None:
        """Partitions revoked; ``positions`` maps each to the first offset not finished."""
        for tp, offset in positions.items():
            self._pending[tp] = _Pending(offset)

    def assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """The new assignment: partitions that went to another worker need no guard (their
        new owner starts from the committed offset)."""
        kept = set(assigned)
        for tp in [tp for tp in self._pending if tp not in kept]:
            del self._pending[tp]
        for tp in [tp for tp in self._last if tp not in kept]:
            del self._last[tp]

    async def position(self, topic: str, partition: int, offset: int) -> None:
        """Read a partition just assigned from ``offset`` (its stored resume offset); one
        this worker gave back and got again, from where it noted it stopped (its next
        message may never come: at the end of a partition nothing would trigger the seek
        in :meth:`admit`, and Kafka's position is past the messages Faust discarded);
        left alone once a message of it was admitted since (:meth:`admit` guards it)."""
        tp = (topic, partition)
        pending = self._pending.get(tp)
        if pending is not None:
            await self._seek(topic, partition, pending.expected)
            return
        if tp in self._last:
            return
        self._pending[tp] = _Pending(offset)
        await self._seek(topic, partition, offset)

    def pending(self) -> dict[TopicPartition, int]:
        """Partitions still waiting for their first unfinished offset."""
        return {tp: pending.expected for tp, pending in self._pending.items()}

    async def admit(self, topic: str, partition: int, offset: int) -> bool:
        """Whether to process this message now; ``False``: it was dropped, and the
        partition sought back (it will be delivered again in order)."""
        tp = (topic, partition)
        pending = self._pending.get(tp)
        if pending is None:
            last = self._last.get(tp)
            if last is not None and offset <= last + 1:
                self._last[tp] = max(last, offset)
                return True
            if last is None:
                start = await self._start(topic, partition)
                if start is None or offset <= start:
                    self._last[tp] = offset
                    return True
                pending = self._pending[tp] = _Pending(start)
            else:
                pending = self._pending[tp] = _Pending(last + 1)
        if offset < pending.expected:
            return True  # finished already (the records skip it)
        pending.repeats = pending.repeats + 1 if offset == pending.last_dropped else 1
        if offset == pending.expected or pending.repeats >= SAME_START:
            del self._pending[tp]
            self._last[tp] = offset
            if offset != pending.expected or pending.dropped:
                log.info(
                    "partition_rewound",
                    topic=topic,
                    partition=partition,
                    resumed_at=offset,
                    expected=pending.expected,
                    dropped=pending.dropped,
                )
            return True
        if not pending.dropped:
            log.info(
                "partition_gap",
                topic=topic,
                partition=partition,
                offset=offset,
                expected=pending.expected,
            )
        pending.last_dropped = offset
        pending.dropped += 1
        await self._seek(topic, partition, pending.expected)
        return False
