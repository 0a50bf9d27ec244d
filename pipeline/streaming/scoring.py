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

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from pipeline.engine import EngineConfig
from pipeline.engine.catalogue import Catalogue
from pipeline.engine.lane import Lane
from pipeline.streaming.counters import Counters
from pipeline.streaming.models import ModelRegistry
from pipeline.streaming.processor import DeviceRecord, Outcome, Prepared, Processor, Source

log = structlog.get_logger(__name__)

Event = Any
MAX_PARKED = 20_000
"""Messages queued in one lane before its partition's fetch is paused."""


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
    changed: bool = False
    """Processed something since its state was last staged for the changelog."""


class ScoringPorts:
    """The I/O the scoring loop calls (the worker's; plain callables, easy to fake)."""

    def __init__(
        self,
        *,
        record_of: Callable[[bytes], DeviceRecord | None],
        route: Callable[[Outcome, Event, bool], Awaitable[None]],
        send_marker: Callable[[int, int, bool], Awaitable[None]],
        load_lane: Callable[[int], Lane | None],
        pause: Callable[[int], None],
        resume: Callable[[int], None],
    ) -> None:
        self.record_of = record_of
        self.route = route
        self.send_marker = send_marker
        self.load_lane = load_lane
        self.pause = pause
        self.resume = resume


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
        catalogue: Catalogue | None = None,
        max_parked: int = MAX_PARKED,
    ) -> None:
        self.config = config
        self.registry = registry
        self.counters = counters
        self.ports = ports
        self.slots: dict[int, LaneSlot] = {}
        self._prefix = topic_prefix
        self._catalogue = catalogue
        self._max_parked = max_parked

    def slot(self, partition: int) -> LaneSlot:
        """Lane ``partition``: restored from its changelog record, or new."""
        slot = self.slots.get(partition)
        if slot is None:
            lane = self.ports.load_lane(partition)
            if lane is None:
                lane = Lane(self.config, partition, self._catalogue)
            slot = self.slots[partition] = LaneSlot(lane, Processor(lane, self._prefix))
        return slot

    def forget(self, partitions: set[int]) -> None:
        """Partitions revoked: their lanes move with the changelog to their new owner."""
        for partition in partitions:
            self.slots.pop(partition, None)

    async def offer(self, event: Event) -> None:
        """Process one input message now, or queue it behind its lane's waiting ones."""
        partition = event.message.partition
        slot = self.slot(partition)
        slot.last_active = time.monotonic()
        slot.last_event = event
        if slot.queue:
            self._park(slot, event)
            return
        if not await self._process(slot, event):
            self._park(slot, event)

    async def drain(self) -> None:
        """Resume every queue whose head can go now (after an epoch closed)."""
        for partition, slot in list(self.slots.items()):
            while slot.queue:
                if not await self._process(slot, slot.queue[0]):
                    break
                slot.queue.popleft()
            if slot.paused and len(slot.queue) < self._max_parked // 2:
                slot.paused = False
                self.ports.resume(partition)

    def waiting(self) -> int:
        """Messages queued behind the barrier, all lanes."""
        return sum(len(slot.queue) for slot in self.slots.values())

    def _park(self, slot: LaneSlot, event: Event) -> None:
        slot.queue.append(event)
        self.counters.parked += 1
        if not slot.paused and len(slot.queue) >= self._max_parked:
            slot.paused = True
            self.ports.pause(slot.lane.partition)
            log.info("lane_paused", partition=slot.lane.partition, queued=len(slot.queue))

    async def _process(self, slot: LaneSlot, event: Event) -> bool:
        """Run ``event`` through its lane; ``False`` if it must wait for a model epoch."""
        message = event.message
        source = Source(message.topic, message.partition, message.offset)
        key = message.key if isinstance(message.key, bytes) else None
        value = message.value if isinstance(message.value, bytes) else None
        device_key = key if key is not None else b""
        try:
            record = self.ports.record_of(device_key)
        except Exception as error:  # an unreadable stored record: this message only
            log.exception("device_record_unreadable", key=device_key[:80])
            outcome = slot.processor.unreadable(source, key, value, error)
        else:
            processor = slot.processor
            prepared = processor.prepare(source, key, value, record)
            if isinstance(prepared, Prepared):
                released = processor.released(prepared)
                for held in released:
                    record = self.ports.record_of(held.device_id.encode())
                    await self.ports.route(processor.apply_held(held, record), event, False)
                if any(held.device_id.encode() == device_key for held in released):
                    prepared = processor.prepare(
                        source, key, value, self.ports.record_of(device_key)
                    )
            if isinstance(prepared, Prepared):
                lane = slot.lane
                needed = slot.processor.needs(prepared)
                if needed is not None:
                    if self.registry.closed < needed:
                        marker = lane.advance(prepared.message.ts.timestamp())
                        if marker is not None:
                            await self._marker(lane.partition, marker)
                        return False
                    lane.install(needed, self.registry.models_as_of(needed))
                outcome = slot.processor.apply(prepared)
            else:
                outcome = prepared
        if outcome.device_id is not None and outcome.device_id.encode() != device_key:
            outcome = slot.processor.mismatched_key(source, key, value)
        slot.changed = True
        await self.ports.route(outcome, event, True)
        if outcome.marker is not None:
            await self._marker(slot.lane.partition, outcome.marker)
        return True

    async def _marker(self, partition: int, complete_through: int) -> None:
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
            await self.ports.route(outcome, slot.last_event, False)
        slot.changed = True
        log.info("lane_released", partition=partition, events=len(outcomes))
        return len(outcomes)

    async def mark_idle(
        self, assigned: set[int], caught_up: Callable[[int], bool], idle_s: float
    ) -> None:
        """Lanes of assigned partitions with nothing to do lately: apply what they hold
        and send an idle marker, so the trainer closes epochs without them."""
        now = time.monotonic()
        for partition in sorted(assigned):
            slot = self.slot(partition)
            if slot.queue or now - slot.last_active < idle_s or not caught_up(partition):
                continue
            await self.release_held(partition)
            await self.ports.send_marker(partition, slot.lane.marked, True)
