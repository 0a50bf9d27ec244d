"""The checkpoint: what a batch of input messages caused, made durable in a fixed order.

At-least-once without doubles rests on the order of :meth:`Checkpointer.commit`:

1. points to InfluxDB (same tags and timestamp: a replayed batch overwrites, never
   doubles); points the server refuses go to ``dead-letter``;
2. Kafka outputs (alerts, training examples, watermark markers, rejects) acknowledged
   by the broker;
3. device states and lane states to their tables (one changelog record per changed
   key, however many messages changed it, written in bulk and acknowledged by the
   broker before the local store takes them);
4. input offsets acknowledged (Faust commits them).

A crash before 4 replays the batch: points overwrite, the device records' offsets
recognise messages already applied, alert ids are deterministic and the published
alerts are remembered. The I/O is behind :class:`CheckpointPorts`, so the order is
tested in-process with fakes (``tests/unit/test_checkpoint.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog

log = structlog.get_logger(__name__)

Event = Any
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Staged(Generic[R]):
    """A newest record, sealed when it was made, and the message that made it.

    The engine updates state in place, so the record object keeps changing as later
    messages arrive; the sealed bytes are the state as of ``event`` and are what the
    table receives once the checkpoint covering ``event`` is durable.
    """

    record: R
    sealed: bytes
    event: Event


class CheckpointPorts(Protocol):
    """The I/O a checkpoint needs (the worker's Faust/InfluxDB/Kafka, or test fakes)."""

    def points_buffered(self) -> bool:
        """Whether points wait to be written (a commit with no message still flushes them)."""

    async def write_points(self) -> list[tuple[str, str]]:
        """Flush buffered points; return the ``(point, reason)`` pairs the server refused."""

    async def dead_letter_points(self, refused: list[tuple[str, str]]) -> list[Awaitable[Any]]:
        """Send refused points to ``dead-letter``; return the deliveries."""

    async def write_states(self, table: str, states: list[tuple[bytes, bytes, Event]]) -> None:
        """Write each ``(key, value, event)`` to ``table``, in the changelog partition of
        its ``event``; return once the changelog holds them all."""

    async def ack(self, event: Event) -> None:
        """Acknowledge an input message."""


@dataclass
class Batch:
    """Work done since the last commit."""

    events: list[Event] = field(default_factory=list)
    states: dict[str, dict[bytes, Staged[Any]]] = field(default_factory=dict)
    sends: list[Awaitable[Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CommitStats:
    """What one commit made durable, and how long each step took (ms)."""

    events: int
    states: int
    sends: int
    points_ms: float
    sends_ms: float
    states_ms: float


class Checkpointer:
    """Collects a batch (:meth:`add_event`, :meth:`stage`, :meth:`add_send`) and commits it.

    ``before_commit`` runs as the batch is taken (no message can slip in between);
    ``on_state_written`` after each state write; ``pause_after_points_s``: a
    fault-injection pause between steps 1 and 2 (tests only).
    """

    def __init__(
        self,
        ports: CheckpointPorts,
        *,
        pause_after_points_s: float = 0.0,
        on_state_written: Callable[[str, bytes, Any], None] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        self._ports = ports
        self._pause = pause_after_points_s
        self._on_state_written = on_state_written
        self._before_commit = before_commit
        self.pending = Batch()
        self._lock = asyncio.Lock()
        self.commits = 0

    def add_event(self, event: Event) -> None:
        """An input message whose effects are all staged (acknowledged at the commit)."""
        self.pending.events.append(event)

    def add_send(self, delivery: Awaitable[Any]) -> None:
        """A Kafka send that must be acknowledged before the states are written."""
        self.pending.sends.append(delivery)

    def stage(self, table: str, key: bytes, staged: Staged[Any]) -> None:
        """The newest value of ``key`` in ``table`` (replaces one staged earlier)."""
        self.pending.states.setdefault(table, {})[key] = staged

    def staged(self, table: str, key: bytes) -> Staged[Any] | None:
        """The value staged for ``key``, also while a commit of it is in flight."""
        return self.pending.states.get(table, {}).get(key)

    @property
    def size(self) -> int:
        """Input messages in the pending batch."""
        return len(self.pending.events)

    async def commit(self) -> CommitStats | None:
        """Make the pending batch durable in the module's order; ``None`` if empty."""
        async with self._lock:
            if self._before_commit is not None:
                self._before_commit()  # last staging, atomically with taking the batch
            batch = self.pending
            if not (batch.events or batch.states or batch.sends or self._ports.points_buffered()):
                return None
            # Staged states stay readable (for the next messages) while step 1 may block
            # on an InfluxDB outage; they are dropped from the new batch once written.
            self.pending = Batch(states={t: dict(s) for t, s in batch.states.items()})
            started = time.monotonic()
            # 1. points
            refused = await self._ports.write_points()
            if refused:
                batch.sends += await self._ports.dead_letter_points(refused)
            points_done = time.monotonic()
            if self._pause and batch.states:
                log.warning("checkpoint_paused", states=sum(map(len, batch.states.values())))
                await asyncio.sleep(self._pause)  # fault injection: a window to kill in
            # 2. Kafka outputs
            if batch.sends:
                await asyncio.gather(*batch.sends)
            sends_done = time.monotonic()
            # 3. states
            written = 0
            for table, states in batch.states.items():
                items = list(states.items())
                await self._ports.write_states(
                    table, [(key, staged.sealed, staged.event) for key, staged in items]
                )
                current = self.pending.states.get(table, {})
                for key, staged in items:
                    if self._on_state_written is not None:
                        self._on_state_written(table, key, staged.record)
                    if current.get(key) is staged:
                        del current[key]
                written += len(items)
            states_done = time.monotonic()
            # 4. offsets
            for event in batch.events:
                await self._ports.ack(event)
            self.commits += 1
            return CommitStats(
                events=len(batch.events),
                states=written,
                sends=len(batch.sends),
                points_ms=round((points_done - started) * 1000, 1),
                sends_ms=round((sends_done - points_done) * 1000, 1),
                states_ms=round((states_done - sends_done) * 1000, 1),
            )
