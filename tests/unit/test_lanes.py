"""Event-time determinism without Kafka: the worker's scoring loop, driven over lanes in
shuffled interleavings with the trainer closing epochs from markers, raises exactly the
alerts the backtest raises (``pipeline/engine/schedule.py``)."""

from __future__ import annotations

import asyncio
import pickle
import random
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

from pipeline import topics
from pipeline.backtest.driver import run_backtest
from pipeline.engine import EngineConfig, FleetModel
from pipeline.engine.schedule import NO_EPOCH, ModelSchedule
from pipeline.engine.training import EpochTrainer
from pipeline.partitioner import partition_for
from pipeline.producer import encode_batch
from pipeline.streaming.counters import Counters
from pipeline.streaming.processor import INPUT_TOPICS, DeviceRecord, Outcome
from pipeline.streaming.scoring import MAX_PARKED, LaneRecord, ScoringLoop, ScoringPorts
from schemas import FailureEvent, Telemetry, TrainingExample
from tests.unit.test_engine_scorer import fleet

CONFIG = EngineConfig(
    counter_metrics=("errors",),
    level_only_metrics=("hours",),
    negative_rate=0.2,
    alert_budget=40.0,
    min_positives=3,
)
PARTITIONS = 3


class Registry:
    """The registry as the lanes see it, over an in-process trainer."""

    def __init__(self, trainer: EpochTrainer) -> None:
        self.trainer = trainer

    @property
    def closed(self) -> int:
        return self.trainer.closed

    def models_as_of(self, epoch: int) -> list[FleetModel]:
        return self.trainer.models_as_of(epoch)


def _events() -> list[Telemetry | FailureEvent]:
    return list(fleet(seed=3, devices=90, days=60))


def _streamed(
    seed: int,
    events: list[Telemetry | FailureEvent],
    *,
    batch: int = 1,
    handovers: float = 0.0,
) -> tuple[list[Any], Counters, int]:
    """Run ``events`` through a ScoringLoop, partitions interleaved at random; ``batch``:
    readings per ``TelemetryBatch`` message (1: one reading per message); ``handovers``:
    the chance, after each burst, that a lane is handed over (a rebalance between
    checkpoints: its record is pickled with its resume offsets, the lane forgotten, and
    its partition read again from those offsets, or from offset 0, by a new lane restored
    from the record)."""
    rng = random.Random(seed)
    trainer = EpochTrainer(CONFIG, lanes=PARTITIONS)
    counters = Counters()
    records: dict[bytes, DeviceRecord] = {}
    alerts: list[Any] = []
    outbox: dict[int, list[TrainingExample]] = {p: [] for p in range(PARTITIONS)}
    stored: dict[int, bytes] = {}
    handed: list[int] = []
    registry = Registry(trainer)

    def load_lane(partition: int) -> LaneRecord | None:
        if partition not in stored:
            return None
        record: LaneRecord = pickle.loads(stored[partition])
        assert not record.lane.scorer.restore_models(registry.models_as_of(record.lane.installed))
        return record

    async def done(event: Any) -> None:
        message = event.message
        counters.last_offsets[(message.topic, message.partition)] = message.offset

    async def route(outcome: Outcome, event: Any) -> None:
        if outcome.device_id is not None and outcome.record is not None:
            records[outcome.device_id.encode()] = outcome.record
        if outcome.rejected is None and not outcome.duplicate:
            alerts.extend(outcome.alerts)
            outbox[event.message.partition] += outcome.examples  # in flight until the marker

    async def send_marker(partition: int, complete_through: int, idle: bool) -> None:
        for example in outbox[partition]:  # Kafka keeps them ahead of the marker
            trainer.add(example)
        outbox[partition] = []
        trainer.mark(partition, complete_through, idle=idle)
        trainer.close_through(trainer.closable())

    loop = ScoringLoop(
        CONFIG,
        registry,  # type: ignore[arg-type]
        counters,
        ScoringPorts(
            record_of=records.get,
            route=route,
            done=done,
            send_marker=send_marker,
            load_lane=load_lane,
            pause=lambda _: None,
            resume=lambda *_: _nothing(),
        ),
        partitions=PARTITIONS,
    )
    logs: dict[tuple[int, str], list[Any]] = {}
    queues: dict[tuple[int, str], deque[Any]] = {}
    open_batches: dict[int, list[bytes]] = {}

    def enqueue(partition: int, topic: str, key: bytes | None, value: bytes) -> None:
        log = logs.setdefault((partition, topic), [])
        message = SimpleNamespace(
            topic=topic, partition=partition, offset=len(log), key=key, value=value
        )
        log.append(SimpleNamespace(message=message))

    for event in events:
        partition = partition_for(event.device_id, PARTITIONS)
        value = event.model_dump_json().encode()
        if not isinstance(event, Telemetry):
            enqueue(partition, topics.FAILURES, event.device_id.encode(), value)
        elif batch == 1:
            enqueue(partition, topics.TELEMETRY, event.device_id.encode(), value)
        else:
            readings = open_batches.setdefault(partition, [])
            readings.append(value)
            if len(readings) == batch:
                enqueue(
                    partition, topics.TELEMETRY, None, encode_batch(open_batches.pop(partition))
                )
    for partition, readings in sorted(open_batches.items()):
        enqueue(partition, topics.TELEMETRY, None, encode_batch(readings))
    for source, log in logs.items():
        queues[source] = deque(log)

    def hand_over(partition: int) -> None:
        """Checkpoint lane ``partition`` and give it to a new owner (this loop, afresh)."""
        slot = loop.slots.get(partition)
        if slot is None:
            return
        resume = loop.resume_offsets(partition, list(INPUT_TOPICS))
        stored[partition] = pickle.dumps(LaneRecord(slot.lane, resume))
        loop.revoke({partition})
        loop.forget({partition})
        from_start = rng.random() < 0.3  # Kafka's committed offset may lag: read again
        for (p, topic), log in logs.items():
            if p == partition:
                start = 0 if from_start else resume.get(topic, 0)
                queues[(p, topic)] = deque(log[start:])
        handed.append(partition)

    async def drain() -> None:
        # The registry's "epoch closed" wakes the waiting lanes, as often as it changes.
        closed = None
        while closed != trainer.closed:
            closed = trainer.closed
            await loop.drain()

    async def run() -> None:
        while queues:
            source = rng.choice(sorted(queues))
            # Bursts of up to 40 readings, as fetches deliver them: lanes drift far apart
            # in event time (a failure read more than allowed_lateness behind its lane
            # would be late: counted in a later epoch, by design).
            for _ in range(rng.randint(1, max(1, 40 // batch))):
                if not queues[source]:
                    break
                closed = trainer.closed
                await loop.offer(queues[source].popleft())
                if trainer.closed != closed:
                    await drain()
            if not queues[source]:
                del queues[source]
            if rng.random() < handovers:
                hand_over(rng.randrange(PARTITIONS))
        await drain()
        for partition in range(PARTITIONS):  # the input ended: the idle lanes let go
            await loop.release_held(partition)

    asyncio.run(run())
    assert loop.waiting() == 0
    assert counters.rejected == 0
    return alerts, counters, len(handed)


async def _nothing() -> None:
    return None


def _ids(alerts: list[Any]) -> list[tuple[str, str]]:
    return sorted((alert.alert_id, alert.action) for alert in alerts)


@pytest.fixture(scope="module")
def backtest() -> list[tuple[str, str]]:
    result = run_backtest(iter(_events()), CONFIG, partitions=PARTITIONS)
    assert result.models_published > 1  # models change during the run: the test bites
    assert result.alerts
    return _ids(result.alerts)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_interleaving_raises_the_backtests_alerts(
    seed: int, backtest: list[tuple[str, str]]
) -> None:
    alerts, counters, _ = _streamed(seed, _events())
    assert counters.parked > 0  # lanes ran ahead and waited at the barrier
    assert _ids(alerts) == backtest


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_readings_raise_the_backtests_alerts(
    seed: int, backtest: list[tuple[str, str]]
) -> None:
    alerts, counters, _ = _streamed(seed, _events(), batch=23)
    assert counters.parked > 0
    assert _ids(alerts) == backtest


@pytest.mark.parametrize(("seed", "batch"), [(0, 1), (1, 1), (2, 23), (3, 23)])
def test_lanes_handed_over_mid_stream_raise_the_backtests_alerts(
    seed: int, batch: int, backtest: list[tuple[str, str]]
) -> None:
    """A rebalance between checkpoints: a lane restored from its pickled record, its
    partition read again from the record's resume offsets (or from the start, the device
    records skipping what was applied), goes on exactly as if nothing happened."""
    alerts, _, handed = _streamed(seed, _events(), batch=batch, handovers=0.05)
    assert handed > 5
    assert _ids(alerts) == backtest


def test_another_partition_count_is_another_run() -> None:
    one = run_backtest(iter(_events()), CONFIG, partitions=1)
    assert _ids(one.alerts) != _ids(run_backtest(iter(_events()), CONFIG, partitions=3).alerts)


def test_schedule_arithmetic() -> None:
    day = 86_400.0
    schedule = ModelSchedule(interval_s=day, lateness_s=day / 2)
    assert schedule.epoch(0.0) == 0
    assert schedule.epoch(day - 1) == 0
    assert schedule.stamp(10.0, watermark=day) == day / 2  # late: into the lane's epoch
    assert schedule.stamp(day, watermark=day) == day  # on time: its own
    # Epoch 0 is complete once the lane is lateness past its end, and scores a day later.
    assert schedule.complete_through(day + day / 2 - 1) == -1
    assert schedule.complete_through(day + day / 2) == 0
    assert schedule.needed(2 * day + day / 2) == 0
    assert schedule.applies_from(0) == 2 * day + day / 2


def test_the_trainer_waits_for_every_active_lane_and_learns_each_example_once() -> None:
    trainer = EpochTrainer(CONFIG, lanes=2)
    stamp = fleet_example(0.0)
    assert trainer.add(stamp)
    assert not trainer.add(stamp)  # re-sent by a restarted worker
    trainer.mark(0, 5)
    assert trainer.closable() == NO_EPOCH
    trainer.mark(1, 3)
    assert trainer.closable() == 3
    trainer.mark(1, 3, idle=True)
    assert trainer.closable() == 5  # an idle lane holds nobody back
    trainer.close_through(trainer.closable())
    assert trainer.examples == 1
    assert not trainer.add(stamp)  # a copy arriving after its epoch closed
    assert trainer.duplicates == 2


def fleet_example(t: float, *, device: str = "d", label: bool = True) -> TrainingExample:
    from datetime import UTC, datetime

    return TrainingExample(
        group="g",
        device_id=device,
        ts=datetime.fromtimestamp(t, UTC),
        features={"x": 1.0 if label else 0.0},
        label=label,
        weight=1.0,
        source="failure" if label else "horizon",
    )


def test_a_restarted_trainer_relearns_what_no_published_version_holds() -> None:
    """Epochs closed before a group's first version are learnt again, each in its own
    epoch, by a trainer resumed after a crash: it ends with the uninterrupted model."""
    config = EngineConfig(min_positives=3)
    schedule = EpochTrainer(config).schedule
    day = schedule.interval_s
    examples = [
        fleet_example(k * day, device=f"d{k}-{i}", label=(k >= 3 and i == 0))
        for k in range(8)
        for i in range(4)
    ]
    whole = EpochTrainer(config)
    for example in examples:
        whole.add(example)
    whole.close_through(7)

    first = EpochTrainer(config)
    for example in examples[:16]:  # epochs 0-3: one positive, no version yet
        first.add(example)
    assert first.close_through(3) == []
    restarted = EpochTrainer(config)
    restarted.resume(first.models_as_of(3), closed=3)  # nothing published: nothing to resume
    for example in examples:  # unacknowledged, so read again from the start
        restarted.add(example)
    restarted.close_through(7)
    assert restarted.late == 0
    x = examples[0].features
    a, b = whole.models_as_of(7)[-1], restarted.models_as_of(7)[-1]
    assert (a.version, a.epoch) == (b.version, b.epoch)
    assert a.pipeline.predict_proba_one(x) == b.pipeline.predict_proba_one(x)


def test_a_lane_without_a_reading_needs_no_epoch() -> None:
    """A new lane's watermark is -inf (a worker reported its waiting lanes with it and
    crashed on ``floor(-inf)``)."""
    from pipeline.engine.schedule import NO_EPOCH, ModelSchedule

    schedule = ModelSchedule(interval_s=3600.0, lateness_s=600.0)
    assert schedule.complete_through(float("-inf")) == NO_EPOCH
    assert schedule.needed(float("-inf")) < NO_EPOCH + 1


def _fake_loop(
    registry: Registry,
    *,
    partitions: int = PARTITIONS,
    max_parked: int = MAX_PARKED,
    **ports: Any,
) -> ScoringLoop:
    """A scoring loop over ``registry`` whose ports do nothing unless given."""
    defaults: dict[str, Any] = {
        "record_of": lambda _: None,
        "route": lambda *_: _nothing(),
        "done": lambda _: _nothing(),
        "send_marker": lambda *_: _nothing(),
        "load_lane": lambda _: None,
        "pause": lambda _: None,
        "resume": lambda *_: _nothing(),
    }
    return ScoringLoop(
        CONFIG,
        registry,  # type: ignore[arg-type]
        Counters(),
        ScoringPorts(**{**defaults, **ports}),
        partitions=partitions,
        max_parked=max_parked,
    )


def test_the_idle_timer_loads_no_lane_before_the_tables_are_recovered() -> None:
    """A lane loaded while its table is still being recovered would be the stale or
    missing record, and the partition's messages would then be scored with it (a fresh
    lane after a rebalance: fewer alerts than the backtest's). The idle timer creates a
    lane for a partition with nothing delivered only once the worker is settled, the
    models read, and the partition has nothing left to read."""
    loaded: list[int] = []
    waited: list[int] = []
    sent: list[tuple[int, int, bool]] = []

    def load_lane(partition: int) -> LaneRecord | None:
        loaded.append(partition)
        return None

    async def before_new_lane() -> None:
        waited.append(len(loaded))

    async def send_marker(partition: int, complete_through: int, idle: bool) -> None:
        sent.append((partition, complete_through, idle))

    loop = _fake_loop(
        Registry(EpochTrainer(CONFIG, lanes=PARTITIONS)),
        send_marker=send_marker,
        load_lane=load_lane,
        before_new_lane=before_new_lane,
    )
    caught_up = {0: True, 1: False, 2: True}.__getitem__
    asyncio.run(loop.mark_idle({0, 1, 2}, caught_up, idle_s=0.0, settled=False))
    assert loaded == []
    assert loop.slots == {}
    assert sent == []
    asyncio.run(loop.mark_idle({0, 1, 2}, caught_up, idle_s=0.0, settled=True))
    assert loaded == [0, 2]  # partition 1 still has messages to read: they load it
    assert waited == [0, 1]  # the models are read before each lane is loaded
    assert sent == []  # a lane is idle after idle_s with nothing, counted from its loading
    asyncio.run(loop.mark_idle({0, 1, 2}, caught_up, idle_s=0.0, settled=True))
    assert [(p, idle) for p, _, idle in sent] == [(0, True), (2, True)]
    assert loaded == [0, 2]


def test_a_lane_waiting_at_the_barrier_sends_its_marker_again() -> None:
    """A trainer that lost a marker (Faust discarded it across a rebalance) would hold
    every lane forever; a lane that has waited ``every_s`` re-sends its newest marker,
    which the trainer takes as it took the first (no decision changes)."""
    sent: list[tuple[int, int, bool]] = []

    async def send_marker(partition: int, complete_through: int, idle: bool) -> None:
        sent.append((partition, complete_through, idle))

    loop = _fake_loop(Registry(EpochTrainer(CONFIG, lanes=PARTITIONS)), send_marker=send_marker)
    waiting, running = loop.slot(0), loop.slot(1)
    for slot in (waiting, running):
        slot.lane.marked = 7
    waiting.queue.append(object())
    asyncio.run(loop.remind(every_s=3600.0))
    assert sent == []  # not waiting long enough yet
    asyncio.run(loop.remind(every_s=0.0))
    assert sent == [(0, 7, False)]  # only the lane that waits
    trainer = EpochTrainer(CONFIG, lanes=1)
    trainer.mark(0, 7)
    trainer.mark(0, 7)  # the same marker again
    assert trainer.closable() == 7


def test_a_paused_partition_resumes_fetching_after_its_newest_parked_message() -> None:
    """A lane whose queue reaches ``max_parked`` pauses its partition's fetch; once it
    drains below half it resumes it *at the offset after the newest message it parked*
    (Faust drops records of a paused partition it had already fetched, and the
    partition was otherwise never fetched again)."""
    trainer = EpochTrainer(CONFIG, lanes=1)
    paused: list[int] = []
    resumed: list[tuple[int, int]] = []

    async def resume(partition: int, offset: int) -> None:
        resumed.append((partition, offset))

    loop = _fake_loop(
        Registry(trainer), pause=paused.append, resume=resume, partitions=1, max_parked=4
    )
    readings = [e for e in _events() if isinstance(e, Telemetry)][:6]
    for offset, reading in enumerate(readings):
        message = SimpleNamespace(
            topic=topics.TELEMETRY,
            partition=0,
            offset=offset,
            key=reading.device_id.encode(),
            value=reading.model_dump_json().encode(),
        )
        asyncio.run(loop.offer(SimpleNamespace(message=message)))
    assert paused == [0]  # no model epoch yet: every reading waits; paused at 4
    trainer.mark(0, 10**9)
    trainer.close_through(trainer.closable())  # every epoch closed: the queue drains
    asyncio.run(loop.drain())
    assert loop.waiting() == 0
    assert resumed == [(0, 6)]  # after offset 5, the newest parked
