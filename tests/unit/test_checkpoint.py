"""The checkpoint's order, in-process with fakes: points, Kafka outputs, states, offsets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from pipeline.streaming.checkpoint import Checkpointer, CheckpointPorts, Staged


class Recorder(CheckpointPorts):
    """Fake I/O that writes down every call in order."""

    def __init__(self, refused: list[tuple[str, str]] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.points = 0
        self._refused = refused or []

    def points_buffered(self) -> bool:
        return self.points > 0

    async def write_points(self) -> list[tuple[str, str]]:
        self.calls.append(("points", self.points))
        self.points = 0
        refused, self._refused = self._refused, []
        return refused

    async def dead_letter_points(self, refused: list[tuple[str, str]]) -> list[Awaitable[Any]]:
        return [self._delivery(("dead-letter", point)) for point, _ in refused]

    async def write_states(self, table: str, states: list[tuple[bytes, bytes, Any]]) -> None:
        await asyncio.sleep(0)  # the changelog's acknowledgement
        for key, value, event in states:
            self.calls.append(("state", (table, key, value, event)))

    async def ack(self, event: Any) -> None:
        self.calls.append(("ack", event))

    def send(self, what: str) -> Awaitable[Any]:
        return self._delivery(("send", what))

    def _delivery(self, call: tuple[str, Any]) -> Awaitable[Any]:
        async def delivered() -> None:
            await asyncio.sleep(0)
            self.calls.append(call)

        return asyncio.ensure_future(delivered())


def test_commit_writes_points_then_outputs_then_states_then_acks() -> None:
    async def run() -> list[tuple[str, Any]]:
        ports = Recorder(refused=[("bad point", "field type conflict")])
        checkpoint = Checkpointer(ports)
        ports.points = 3
        checkpoint.add_send(ports.send("alert"))
        checkpoint.stage("devices", b"d1", Staged("record-1", b"sealed-1", "event-1"))
        checkpoint.add_event("event-1")
        checkpoint.stage("devices", b"d1", Staged("record-2", b"sealed-2", "event-2"))
        checkpoint.add_event("event-2")
        stats = await checkpoint.commit()
        assert stats is not None
        assert (stats.events, stats.states) == (2, 1)
        return ports.calls

    calls = asyncio.run(run())
    kinds = [kind for kind, _ in calls]
    assert kinds[0] == "points"
    assert set(kinds[1:3]) == {"send", "dead-letter"}  # refused points dead-lettered too
    # One changelog record per key, however many messages changed it: the newest.
    assert calls[3] == ("state", ("devices", b"d1", b"sealed-2", "event-2"))
    assert calls[4:] == [("ack", "event-1"), ("ack", "event-2")]


def test_staged_state_stays_readable_during_a_commit_and_is_dropped_once_written() -> None:
    async def run() -> None:
        ports = Recorder()
        checkpoint = Checkpointer(ports)
        staged = Staged("record", b"sealed", "event")
        checkpoint.stage("devices", b"d1", staged)
        checkpoint.add_event("event")
        gate = asyncio.Event()
        original = ports.write_points

        async def slow_points() -> list[tuple[str, str]]:
            await gate.wait()  # InfluxDB is down for a while
            return await original()

        ports.write_points = slow_points  # type: ignore[method-assign]
        commit = asyncio.ensure_future(checkpoint.commit())
        await asyncio.sleep(0)
        assert checkpoint.staged("devices", b"d1") is staged  # the next message reads it
        newer = Staged("newer", b"sealed-newer", "event-2")
        checkpoint.stage("devices", b"d1", newer)
        gate.set()
        await commit
        assert checkpoint.staged("devices", b"d1") is newer  # not dropped: not yet written
        await checkpoint.commit()
        assert checkpoint.staged("devices", b"d1") is None

    asyncio.run(run())


def test_before_commit_stages_with_the_batch_it_belongs_to() -> None:
    async def run() -> list[tuple[str, Any]]:
        ports = Recorder()
        staged: list[str] = []

        def lanes() -> None:
            staged.append("lane")
            checkpoint.stage("lanes", b"0", Staged("lane", b"lane-sealed", "event"))

        checkpoint = Checkpointer(ports, before_commit=lanes)
        checkpoint.add_event("event")
        await checkpoint.commit()
        return ports.calls

    calls = asyncio.run(run())
    assert ("state", ("lanes", b"0", b"lane-sealed", "event")) in calls
    assert calls[-1] == ("ack", "event")


def test_an_empty_checkpoint_does_nothing_but_flush_waiting_points() -> None:
    ports = Recorder()
    checkpoint = Checkpointer(ports)
    assert asyncio.run(checkpoint.commit()) is None
    assert ports.calls == []
    ports.points = 1
    assert asyncio.run(checkpoint.commit()) is not None
    assert ports.calls == [("points", 1)]


@pytest.mark.parametrize("fail_at", ["points", "send"])
def test_a_failed_step_acknowledges_nothing(fail_at: str) -> None:
    async def run() -> list[tuple[str, Any]]:
        ports = Recorder()
        checkpoint = Checkpointer(ports)

        async def broken() -> None:
            raise ConnectionError("down")

        if fail_at == "points":
            ports.write_points = broken  # type: ignore[assignment,method-assign]
        else:
            checkpoint.add_send(asyncio.ensure_future(broken()))
        checkpoint.stage("devices", b"d1", Staged("r", b"s", "event"))
        checkpoint.add_event("event")
        with pytest.raises(ConnectionError):
            await checkpoint.commit()
        return ports.calls

    calls = asyncio.run(run())
    assert [kind for kind, _ in calls if kind in ("state", "ack")] == []
