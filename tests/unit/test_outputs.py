"""Outputs: what an outcome stages for its checkpoint, in-process with fake topics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from pipeline.engine import Evaluator
from pipeline.streaming.checkpoint import Checkpointer
from pipeline.streaming.counters import Counters
from pipeline.streaming.intake import Rejection, rejected
from pipeline.streaming.outputs import Outputs
from pipeline.streaming.processor import DeviceRecord, Outcome
from pipeline.streaming.published import PublishedAlerts
from pipeline.streaming.records import DEVICES
from pipeline.streaming.rollup import Rollup
from pipeline.streaming.signing import unseal
from pipeline.streaming.sink import InfluxSink
from schemas import LaneWatermark
from tests.unit.factories import make_alert

KEY = SecretStr("test-signing-key")


class FakeTopic:
    """Records every send; each delivery is an already-finished future."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes, dict[str, Any]]] = []

    async def send(self, *, key: bytes | None, value: bytes, **kwargs: Any) -> Awaitable[None]:
        self.sent.append((key, value, kwargs))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def no_write(lines: list[str]) -> None:
    raise AssertionError("nothing is written before the checkpoint")


@dataclass
class Rig:
    outputs: Outputs
    checkpoint: Checkpointer
    alerts: FakeTopic
    examples: FakeTopic
    dead_letter: FakeTopic
    sink: InfluxSink
    counters: Counters
    published: PublishedAlerts


@dataclass
class Message:
    topic: str = "telemetry"
    partition: int = 0
    offset: int = 7


@dataclass
class Event:
    message: Message


def rig(partitions: int = 3) -> Rig:
    alerts, examples, dead_letter = FakeTopic(), FakeTopic(), FakeTopic()
    checkpoint = Checkpointer(ports=None)  # type: ignore[arg-type]  # never committed here
    sink = InfluxSink(no_write, batch_size=100, max_buffered=1000)
    counters, published = Counters(), PublishedAlerts()
    outputs = Outputs(
        checkpoint,
        alerts=alerts,
        examples=examples,
        dead_letter=dead_letter,
        sink=sink,
        rollup=Rollup(period_s=3600, worker="w", run="r"),
        evaluator=Evaluator(14 * 86400.0),
        published=published,
        counters=counters,
        signing_key=KEY,
        partitions=partitions,
        sink_readings=True,
    )
    return Rig(outputs, checkpoint, alerts, examples, dead_letter, sink, counters, published)


def test_a_marker_goes_to_every_training_partition_and_the_checkpoint_waits_for_it() -> None:
    async def run() -> Rig:
        r = rig(partitions=3)
        await r.outputs.send_marker(2, 41, False)
        return r

    r = asyncio.run(run())
    assert [kwargs["partition"] for _, _, kwargs in r.examples.sent] == [0, 1, 2]
    marker = LaneWatermark.model_validate_json(r.examples.sent[0][1])
    assert (marker.partition, marker.complete_through, marker.idle) == (2, 41, False)
    assert len(r.checkpoint.pending.sends) == 3


def test_an_alert_already_published_is_not_sent_again() -> None:
    alert = make_alert()
    event = Event(Message())

    async def run() -> Rig:
        r = rig()
        outcome = Outcome(device_id="Z1", record=DeviceRecord(), alerts=[alert])
        await r.outputs.route(outcome, event)
        await r.outputs.route(outcome, event)  # the same alert, replayed
        await r.outputs.done(event)
        return r

    r = asyncio.run(run())
    assert len(r.alerts.sent) == 1
    key, value, _ = r.alerts.sent[0]
    assert key == b"Z1"
    assert value == alert.model_dump_json().encode()
    assert alert in r.published
    assert r.sink.buffered == 2  # the alert's point, once per routing (points overwrite)
    staged = r.checkpoint.staged(DEVICES, b"Z1")
    assert staged is not None
    assert staged.event is event
    assert isinstance(unseal(KEY, staged.sealed), DeviceRecord)
    assert r.checkpoint.pending.events == [event]
    assert r.counters.last_offsets[("telemetry", 0)] == 7


def test_a_rejected_message_goes_to_dead_letter_and_nothing_else() -> None:
    envelope = rejected(
        Rejection("not JSON"), topic="telemetry", partition=0, offset=7, key=b"k", value=b"{"
    )

    async def run() -> Rig:
        r = rig()
        await r.outputs.route(Outcome(rejected=envelope), Event(Message()))
        return r

    r = asyncio.run(run())
    assert [value for _, value, _ in r.dead_letter.sent] == [envelope.model_dump_json().encode()]
    assert r.counters.rejected == 1
    assert not r.alerts.sent
    assert not r.examples.sent
    assert r.sink.buffered == 0
