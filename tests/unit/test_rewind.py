"""A partition handed straight back after a rebalance is read again from where the worker
stopped; the trainer acknowledges its messages in offset order (both guard against
Faust moving the committed offset past a message nobody finished)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from pipeline.engine import EngineConfig
from pipeline.engine.training import EpochTrainer
from pipeline.streaming.counters import Counters
from pipeline.streaming.models import ModelRegistry
from pipeline.streaming.rewind import SAME_START, Rewinds
from pipeline.streaming.training import TrainingLoop
from schemas import LaneWatermark
from tests.unit.test_lanes import fleet_example


class Consumer:
    """Delivers offsets the way Faust does after a rebalance: what it had fetched before
    first, then, after a seek, the partition again from the sought offset."""

    def __init__(self, log: list[int], stale: list[int]) -> None:
        self.log = log
        self.stale = list(stale)
        self.fetched: list[int] = []
        self.seeks: list[int] = []

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        self.seeks.append(offset)
        self.fetched = [o for o in self.log if o >= offset]

    def run(self, rewinds: Rewinds) -> list[int]:
        processed: list[int] = []

        async def go() -> None:
            for _ in range(1000):
                queue = self.stale or self.fetched
                if not queue:
                    return
                offset = queue.pop(0)
                if await rewinds.admit("t", 0, offset):
                    processed.append(offset)

        asyncio.run(go())
        return processed


def test_stale_messages_are_dropped_and_the_partition_read_again_from_the_unfinished() -> None:
    log = list(range(40))
    consumer = Consumer(log, stale=[18, 19, 20])
    rewinds = Rewinds(consumer.seek)
    rewinds.revoked({("t", 0): 2})
    rewinds.assigned([("t", 0), ("t", 1)])
    processed = consumer.run(rewinds)
    assert processed == list(range(2, 40))
    assert consumer.seeks == [2, 2, 2]  # once per stale message
    assert rewinds.pending() == {}


def test_a_missing_offset_is_passed_once_the_partition_is_read_again() -> None:
    """No message at the first unfinished offset (a transaction marker): the re-read
    stream starts above it, and its first message is accepted."""
    log = [0, 1, *range(3, 30)]
    consumer = Consumer(log, stale=[18])
    rewinds = Rewinds(consumer.seek)
    rewinds.revoked({("t", 0): 2})
    rewinds.assigned([("t", 0)])
    assert consumer.run(rewinds) == list(range(3, 30))
    assert rewinds.pending() == {}
    assert len(consumer.seeks) == SAME_START  # the stale one, then 3 first three times


def test_a_stale_message_delivered_twice_is_not_taken_for_a_new_start() -> None:
    log = list(range(10))
    consumer = Consumer(log, stale=[6, 6, 7])
    rewinds = Rewinds(consumer.seek)
    rewinds.revoked({("t", 0): 4})
    rewinds.assigned([("t", 0)])
    assert consumer.run(rewinds) == list(range(4, 10))


def test_messages_already_finished_pass_and_a_partition_given_away_is_not_guarded() -> None:
    rewinds = Rewinds(Consumer([], []).seek)
    rewinds.revoked({("t", 0): 5, ("t", 1): 7})
    rewinds.assigned([("t", 0)])
    assert rewinds.pending() == {("t", 0): 5}
    assert asyncio.run(rewinds.admit("t", 0, 3))  # finished before: records skip it
    assert asyncio.run(rewinds.admit("t", 1, 9))  # another worker's partition meanwhile
    assert rewinds.pending() == {("t", 0): 5}


def stored_start(offset: int | None) -> Any:
    async def start(topic: str, partition: int) -> int | None:
        return offset

    return start


def test_a_partition_new_to_the_worker_is_read_from_its_stored_resume_offset() -> None:
    """Taken over (or after a restart) with Kafka's committed offset past messages the
    previous owner never finished: the first message above the lane record's resume
    offset is dropped and the partition read again from there."""
    log = list(range(30))
    consumer = Consumer(log, stale=[14, 15])
    rewinds = Rewinds(consumer.seek, stored_start(2))
    rewinds.assigned([("t", 0)])
    assert consumer.run(rewinds) == list(range(2, 30))
    assert consumer.seeks == [2, 2]


def test_a_partition_behind_its_stored_resume_offset_is_read_as_delivered() -> None:
    """Delivered from below the stored offset (the commit lagged the state): admitted,
    the device records skip what was applied; no stored offset: no guard."""
    consumer = Consumer(list(range(10)), stale=[])
    consumer.fetched = list(range(10))
    rewinds = Rewinds(consumer.seek, stored_start(6))
    assert consumer.run(rewinds) == list(range(10))
    unguarded = Consumer(list(range(10)), stale=[7, 8, 9])
    assert unguarded.run(Rewinds(unguarded.seek, stored_start(None))) == [7, 8, 9]
    assert unguarded.seeks == []


def test_a_partition_positioned_at_assignment_is_read_from_there() -> None:
    """Positioned before any message (Faust left it at the end of what it discarded):
    sought to the stored offset, and a stale message delivered after is dropped."""
    consumer = Consumer(list(range(20)), stale=[12])
    rewinds = Rewinds(consumer.seek, stored_start(3))
    asyncio.run(rewinds.position("t", 0, 3))
    assert consumer.seeks == [3]
    assert consumer.run(rewinds) == list(range(3, 20))
    assert consumer.seeks == [3, 3]
    asyncio.run(rewinds.position("t", 0, 0))  # already reading: left alone
    assert consumer.seeks == [3, 3]


def test_a_partition_handed_straight_back_at_its_end_is_read_again() -> None:
    """Given back and assigned again with nothing new on it: Faust left its position past
    the messages it discarded and no message comes to trigger the guard's seek, so the
    positioning at assignment seeks it back to the first one not finished (a trainer
    waited forever for the markers it had read but not finished)."""
    consumer = Consumer([0, 1], stale=[])
    rewinds = Rewinds(consumer.seek, stored_start(None))
    rewinds.revoked({("t", 0): 0})
    rewinds.assigned([("t", 0)])
    asyncio.run(rewinds.position("t", 0, 0))
    assert consumer.seeks == [0]
    assert consumer.run(rewinds) == [0, 1]


@dataclass
class Message:
    offset: int


@dataclass
class Event:
    message: Message


def test_the_trainer_acknowledges_only_in_offset_order() -> None:
    """A marker of a closed epoch behind an example no published version holds yet
    stays unacknowledged: the committed offset never passes the example."""
    config = EngineConfig(min_positives=1)
    day = EpochTrainer(config).schedule.interval_s
    acked: list[int] = []
    resumes: list[int | None] = []

    async def ack(event: Any) -> None:
        acked.append(event.message.offset)

    async def publish(*args: Any) -> None:
        resumes.append(args[-1])

    loop = TrainingLoop(
        config,
        lanes=1,
        training_partitions=1,
        registry=ModelRegistry(SecretStr("k" * 32), 1),
        counters=Counters(),
        publish=publish,
        ack=ack,
    )

    async def feed() -> None:
        await loop.on_example(
            0, Event(Message(0)), fleet_example(0.5 * day, label=False, device="a")
        )
        await loop.on_marker(0, Event(Message(1)), LaneWatermark(partition=0, complete_through=0))
        assert acked == []  # no version of "g" yet: offset 0 waits, and 1 behind it
        assert loop.resume_offset(0) == 0
        for k in range(2, 6):
            await loop.on_example(
                0, Event(Message(k)), fleet_example((k + 0.5) * day, label=True, device=f"p{k}")
            )
        await loop.on_marker(0, Event(Message(6)), LaneWatermark(partition=0, complete_through=8))

    asyncio.run(feed())
    assert acked == list(range(7))  # the first version holds them all
    assert loop.resume_offset(0) == 7
    # What each EpochClosed says the next trainer must read from: the example at 0 until
    # a version holds it, then everything read.
    assert resumes == [0, 7]


def test_a_gap_inside_a_partition_kept_is_read_again() -> None:
    """Offset 5 skipped (delivered 0-4, then 6): the partition is read again from 5."""
    log = list(range(12))
    consumer = Consumer(log, stale=[0, 1, 2, 3, 4, 6, 7])
    rewinds = Rewinds(consumer.seek)
    assert consumer.run(rewinds) == list(range(12))
    assert consumer.seeks == [5, 5]
