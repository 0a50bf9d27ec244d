"""The scoring side of a worker: one lane per input partition, and the model barrier.

Messages of partition ``p`` (of ``telemetry``, ``failures`` and ``feedback``) go to lane
``p`` in the order they arrive. A reading whose lane time needs a model epoch that is not
closed yet waits, with every later message of its partition, in the lane's queue (the
watermark barrier of ``pipeline/engine/schedule.py``); the other partitions go on. When
the registry announces a closed epoch, :meth:`ScoringLoop.drain` resumes the queues. A
queue longer than ``max_parked`` pauses the partition's fetch until it drains.

A lane whose partition has had nothing new for ``idle_s`` seconds of wall time, with
nothing queued and nothing left to fetch, is *idle*: it sends an idle marker so the
trainer closes epochs without it. That is the one place where the wall clock enters,
and only for partitions without data (``docs/streaming.md``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from pipeline import topics
from pipeline.engine import EngineConfig
from pipeline.engine.catalogue import Catalogue
from pipeline.engine.lane import Lane
from pipeline.engine.schedule import NO_EPOCH
from pipeline.streaming.counters import Counters
from pipeline.streaming.intake import Decoded, InputMessage, Rejection
from pipeline.streaming.models import ModelRegistry
from pipeline.streaming.processor import (
    INPUT_TOPICS,
    DeviceRecord,
    Outcome,
    Prepared,
    Processor,
    Source,
)

log = structlog.get_logger(__name__)

Event = Any
MAX_PARKED = 20_000
"""Messages queued in one lane before its partition's fetch is paused."""


async def _nothing() -> None:
    return None


@dataclass
class Head:
    """The message at the head of a lane, decoded, and how far into it the lane got."""

    event: Event
    units: list[Decoded]
    position: int = 0


@dataclass
class LaneSlot:
    """A lane of this worker, its processor and its queue of waiting messages."""

    lane: Lane
    processor: Processor
    queue: deque[Event] = field(default_factory=deque)
    last_active: float = field(default_factory=time.monotonic)
    last_event: Event = None
    """The newest message of the partition (carries its partition to the tables)."""
    paused: bool = False
    last_telemetry: Event = None
    """The newest ``telemetry`` message parked: nothing newer is delivered while the
    partition is paused, so its fetch resumes after it."""
    head: Head | None = None
    revoked: bool = False
    """The partition is being handed to another worker: process nothing more."""
    draining: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One drain of the queue at a time (the agent and the wake-up task both drain)."""
    changed: bool = False
    """Processed something since its state was last staged for the changelog."""
    resume: dict[str, int] | None = field(default_factory=dict)
    """Per input topic, the first offset not finished as of the last staged state (a
    topic missing: from its first offset; ``None``: a record written before resume
    offsets were kept, no guard)."""
    marked_at: float = field(default_factory=time.monotonic)
    """Wall time the lane last sent its marker (for :meth:`ScoringLoop.remind`)."""


@dataclass
class LaneRecord:
    """The value of the lane-state table: a lane, and where its partition resumes.

    ``resume`` maps each input topic to the first offset of the partition whose effects
    are not in this state (a topic missing: nothing of it read yet, start at its first
    offset). Whoever takes the partition next (this worker after a restart, or another
    after a rebalance) reads it from there, whatever offset Kafka delivers first
    (:mod:`pipeline.streaming.rewind`). ``None``: a record from before resume offsets.
    """

    lane: Lane
    resume: dict[str, int] | None = field(default_factory=dict)


class ScoringPorts:
    """The I/O the scoring loop calls (the worker's; plain callables, easy to fake)."""

    def __init__(
        self,
        *,
        record_of: Callable[[bytes], DeviceRecord | None],
        route: Callable[[Outcome, Event], Awaitable[None]],
        done: Callable[[Event], Awaitable[None]],
        send_marker: Callable[[int, int, bool], Awaitable[None]],
        load_lane: Callable[[int], LaneRecord | None],
        pause: Callable[[int], None],
        resume: Callable[[int, int], Awaitable[None]],
        labels_read: Callable[[int], bool] = lambda _: True,
        before_new_lane: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.record_of = record_of
        self.route = route
        self.done = done
        self.send_marker = send_marker
        self.load_lane = load_lane
        self.pause = pause
        self.resume = resume
        self.labels_read = labels_read
        """Whether every failure and verdict of a partition that Kafka held when its
        newest reading was fetched has been processed."""
        self.before_new_lane = before_new_lane or _nothing


class ScoringLoop:
    """The lanes this worker holds; see the module doc."""

    def __init__(
        self,
        config: EngineConfig,
        registry: ModelRegistry,
        counters: Counters,
        ports: ScoringPorts,
        *,
        topic_prefix: str = "",
        partitions: int = 1,
        catalogue: Catalogue | None = None,
        max_parked: int = MAX_PARKED,
    ) -> None:
        self.config = config
        self.registry = registry
        self.counters = counters
        self.ports = ports
        self.slots: dict[int, LaneSlot] = {}
        self._prefix = topic_prefix
        self._telemetry = topic_prefix + topics.TELEMETRY
        self._inputs = {topic_prefix + name for name in INPUT_TOPICS}
        self._partitions = partitions
        self._catalogue = catalogue
        self._max_parked = max_parked

    def slot(self, partition: int) -> LaneSlot:
        """Lane ``partition``: restored from its changelog record, or new."""
        slot = self.slots.get(partition)
        if slot is None:
            record = self.ports.load_lane(partition)
            if record is None:
                record = LaneRecord(Lane(self.config, partition, self._catalogue))
            processor = Processor(record.lane, self._prefix, self._partitions)
            resume = dict(record.resume) if record.resume is not None else None
            slot = self.slots[partition] = LaneSlot(record.lane, processor, resume=resume)
        return slot

    def revoke(self, partitions: set[int]) -> None:
        """Partitions are being revoked: stop processing them (the next unit of a message
        in progress does not start), before the last checkpoint is committed."""
        for partition in partitions:
            slot = self.slots.get(partition)
            if slot is not None:
                slot.revoked = True

    def resume_offsets(self, partition: int, topics: list[str]) -> dict[str, int]:
        """Per input topic of ``partition``: the first offset not finished, by this worker
        or (topics it has read nothing of) by the state the lane was restored from."""
        slot = self.slots.get(partition)
        positions = dict(slot.resume or {}) if slot is not None else {}
        for topic in topics:
            last = self.counters.last_offsets.get((topic, partition))
            if last is not None:
                positions[topic] = last + 1
        if slot is not None:
            waiting = [event.message.offset for event in slot.queue]
            if slot.head is not None:
                waiting.append(slot.head.event.message.offset)
            if waiting:
                positions[self._telemetry] = min(waiting)
        return positions

    def forget(self, partitions: set[int]) -> None:
        """Partitions revoked: their lanes move with the changelog to their new owner (what
        this worker finished of them is stale once another worker went on)."""
        for partition in partitions:
            self.slots.pop(partition, None)
        for key in [key for key in self.counters.last_offsets if key[1] in partitions]:
            if key[0] in self._inputs:
                del self.counters.last_offsets[key]

    async def offer(self, event: Event) -> None:
        """Process one input message now, or queue a reading behind its lane's waiting
        ones. Failures and verdicts never queue: a lane holds them until it moves past
        their time anyway, and a queued reading may be waiting for them."""
        partition = event.message.partition
        if partition not in self.slots:
            await self.ports.before_new_lane()
        slot = self.slot(partition)
        slot.last_active = time.monotonic()
        slot.last_event = event
        if event.message.topic != self._telemetry:
            await self._process(slot, event)
            await self._drain_slot(partition, slot)
            return
        if slot.queue:
            self._park(slot, event)
            return
        if not await self._process(slot, event):
            self._park(slot, event)

    async def drain(self) -> None:
        """Resume every queue whose head can go now (after an epoch closed)."""
        for partition, slot in list(self.slots.items()):
            await self._drain_slot(partition, slot)

    async def _drain_slot(self, partition: int, slot: LaneSlot) -> None:
        async with slot.draining:
            while slot.queue:
                if not await self._process(slot, slot.queue[0]):
                    break
                slot.queue.popleft()
        if slot.paused and len(slot.queue) < self._max_parked // 2:
            slot.paused = False
            await self.ports.resume(partition, slot.last_telemetry.message.offset + 1)

    def report_waiting(self) -> None:
        """Log every lane that has messages waiting, and what it waits for."""
        for partition, slot in sorted(self.slots.items()):
            if slot.queue:
                lane = slot.lane
                log.info(
                    "lane_waiting",
                    partition=partition,
                    queued=len(slot.queue),
                    watermark=lane.watermark,
                    marked=lane.marked,
                    needs=lane.schedule.needed(lane.watermark),
                    closed=self.registry.closed,
                    labels_read=self.ports.labels_read(partition),
                )

    async def remind(self, every_s: float) -> None:
        """Send again the marker of every lane that has waited at the barrier for
        ``every_s`` seconds of wall time since it last sent one.

        Markers are idempotent (the trainer keeps each lane's newest), so this changes no
        decision; it only keeps the fleet live when a trainer lost markers it had been
        sent (Faust can discard what it fetched for a partition across a rebalance, and
        then never deliver it again: an epoch that waits for a marker nobody sends
        again would hold every lane forever)."""
        now = time.monotonic()
        for partition, slot in sorted(self.slots.items()):
            lane = slot.lane
            if slot.queue and lane.marked > NO_EPOCH and now - slot.marked_at >= every_s:
                log.info("lane_marker_resent", partition=partition, complete_through=lane.marked)
                await self._marker(partition, lane.marked)

    def waiting(self) -> int:
        """Messages queued behind the barrier, all lanes."""
        return sum(len(slot.queue) for slot in self.slots.values())

    def _park(self, slot: LaneSlot, event: Event) -> None:
        slot.queue.append(event)
        slot.last_telemetry = event
        self.counters.parked += 1
        if not slot.paused and len(slot.queue) >= self._max_parked:
            slot.paused = True
            self.ports.pause(slot.lane.partition)
            log.info("lane_paused", partition=slot.lane.partition, queued=len(slot.queue))

    async def _process(self, slot: LaneSlot, event: Event) -> bool:
        """Run ``event`` (every reading of a batch) through its lane; ``False`` if it must
        wait for a model epoch (a batch then resumes at the reading that waits)."""
        if slot.revoked:
            return False  # read again by the partition's next owner
        message = event.message
        key = message.key if isinstance(message.key, bytes) else None
        value = message.value if isinstance(message.value, bytes) else None
        source = Source(message.topic, message.partition, message.offset)
        if message.topic != self._telemetry:
            for index, decoded in slot.processor.decode(source, key, value):
                unit_source = Source(message.topic, message.partition, message.offset, index)
                await self._unit(slot, event, unit_source, decoded, key=key, value=value)
            slot.changed = True  # a failure or verdict held in the lane changed it
            await self.ports.done(event)
            return True
        head = slot.head
        if head is None or head.event is not event:
            if not self.ports.labels_read(message.partition):
                return False  # a failure written before this reading is still on its way
            head = slot.head = Head(event, slot.processor.decode(source, key, value))
        while head.position < len(head.units):
            if slot.revoked:
                return False  # read again by the partition's next owner
            index, decoded = head.units[head.position]
            source = Source(message.topic, message.partition, message.offset, index)
            if not await self._unit(slot, event, source, decoded, key=key, value=value):
                return False
            head.position += 1
        slot.head = None
        slot.changed = True
        await self.ports.done(event)
        return True

    async def _unit(
        self,
        slot: LaneSlot,
        event: Event,
        source: Source,
        decoded: InputMessage | Rejection,
        *,
        key: bytes | None,
        value: bytes | None,
    ) -> bool:
        """One message, or one reading of a batch: ``False`` if it waits for a model."""
        processor = slot.processor
        if isinstance(decoded, Rejection):
            await self.ports.route(processor.refuse(source, key, value, decoded), event)
            return True
        device_key = decoded.device_id.encode()
        if source.index is None:
            if key != device_key:
                await self.ports.route(processor.mismatched_key(source, key, value), event)
                return True
        else:
            # A reading of a batch: a rejection carries the reading's own JSON, which the
            # processor serialises only then (``value=None``).
            key, value = None, None
        try:
            record = self.ports.record_of(device_key)
        except Exception as error:  # an unreadable stored record: this message only
            log.exception("device_record_unreadable", key=device_key[:80])
            raw = value if value is not None else decoded.model_dump_json().encode()
            await self.ports.route(processor.unreadable(source, key, raw, error), event)
            return True
        prepared = processor.admit(source, key, value, decoded, record)
        if isinstance(prepared, Prepared):
            released = processor.released(prepared)
            for held in released:
                held_record = self.ports.record_of(held.device_id.encode())
                await self.ports.route(processor.apply_held(held, held_record), event)
            if any(held.device_id == decoded.device_id for held in released):
                prepared = processor.admit(
                    source, key, value, decoded, self.ports.record_of(device_key)
                )
        if not isinstance(prepared, Prepared):
            await self.ports.route(prepared, event)
            return True
        lane = slot.lane
        needed = processor.needs(prepared)
        if needed is not None:
            if self.registry.closed < needed:
                marker = lane.advance(prepared.message.ts.timestamp())
                if marker is not None:
                    await self._marker(lane.partition, marker)
                # Checked again after the await: had the epoch closed meanwhile, the
                # wake-up (drain) has passed already and the lane would wait forever.
                if self.registry.closed < needed:
                    return False
            lane.install(needed, self.registry.models_as_of(needed))
        outcome = processor.apply(prepared)
        slot.changed = True  # staged even if a later reading of its batch waits
        await self.ports.route(outcome, event)
        if outcome.marker is not None:
            await self._marker(lane.partition, outcome.marker)
        return True

    async def _marker(self, partition: int, complete_through: int) -> None:
        slot = self.slots.get(partition)
        if slot is not None:
            slot.marked_at = time.monotonic()
        self.counters.markers += 1
        await self.ports.send_marker(partition, complete_through, False)

    async def release_held(self, partition: int) -> int:
        """Apply every event lane ``partition`` holds (its input ended or went idle)."""
        slot = self.slots.get(partition)
        if slot is None or slot.queue or slot.last_event is None or not slot.lane.held:
            return 0
        outcomes = slot.processor.release_all(
            lambda device_id: self.ports.record_of(device_id.encode())
        )
        for outcome in outcomes:
            await self.ports.route(outcome, slot.last_event)
        slot.changed = True
        log.info("lane_released", partition=partition, events=len(outcomes))
        return len(outcomes)

    async def mark_idle(
        self,
        assigned: set[int],
        caught_up: Callable[[int], bool],
        idle_s: float,
        *,
        settled: bool = True,
    ) -> None:
        """Lanes of assigned partitions with nothing to do lately: apply what they hold
        and send an idle marker, so the trainer closes epochs without them.

        A partition with no lane here yet (nothing delivered since it was assigned) gets
        one only once the worker is ``settled`` (its tables recovered) and the partition
        is ``caught_up`` with nothing to read: a lane loaded earlier would be the stale
        or missing record of a table still being recovered, and would then score the
        partition's messages with the wrong state."""
        now = time.monotonic()
        for partition in sorted(assigned):
            slot = self.slots.get(partition)
            if slot is None:
                if not settled or not caught_up(partition):
                    continue
                await self.ports.before_new_lane()
                slot = self.slot(partition)
            if slot.queue or now - slot.last_active < idle_s or not caught_up(partition):
                continue
            await self.release_held(partition)
            await self.ports.send_marker(partition, slot.lane.marked, True)
