"""One input message in, everything it causes out: the worker's pure core.

The Faust agent only moves bytes: it hands each message to :class:`Processor` and
writes what comes back (state, points, alerts, training examples, rejects). Keeping
this step free of I/O makes it testable without Kafka and identical to the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pipeline import topics
from pipeline.engine import DeviceState, Scorer, Step
from pipeline.streaming.intake import Rejection, decode, rejected
from pipeline.streaming.lineprotocol import alert_line, prediction_line, reading_line
from schemas import (
    Alert,
    FailureEvent,
    Feedback,
    Prediction,
    Rejected,
    Telemetry,
    TrainingExample,
)


@dataclass(slots=True)
class DeviceRecord:
    """The value of the device-state table: engine state plus the offsets already applied.

    The offsets make replays after a crash idempotent: a message at or below the
    recorded offset of its topic has already changed this state and is skipped.

    Kafka orders messages within a topic only, so a failure can overtake the last
    readings before it when the worker lags on ``telemetry``. A failure dated after
    the device's newest reading waits in ``deferred_failure`` and is applied right
    after the first reading at or past its time, as the backtest applies it.
    """

    state: DeviceState | None = None
    offsets: dict[str, int] = field(default_factory=dict)
    last_reading: datetime | None = None
    deferred_failure: FailureEvent | None = None


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from."""

    topic: str
    partition: int | None
    offset: int | None


@dataclass(slots=True)
class Outcome:
    """What handling one message produced."""

    device_id: str | None = None
    record: DeviceRecord | None = None
    duplicate: bool = False
    reading: Telemetry | None = None
    predictions: list[Prediction] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    examples: list[TrainingExample] = field(default_factory=list)
    failures: list[FailureEvent] = field(default_factory=list)
    rejected: Rejected | None = None

    def lines(self, *, readings: bool = True) -> list[str]:
        """The InfluxDB points of this outcome: the reading's raw metrics (if ``readings``
        and it has any InfluxDB can store), then predictions, then alerts."""
        points = [prediction_line(p) for p in self.predictions]
        points += [alert_line(a) for a in self.alerts]
        if readings and self.reading is not None:
            reading = reading_line(self.reading)
            if reading is not None:
                points.insert(0, reading)
        return points


class Processor:
    """Applies input messages to device records through the engine's ``Scorer``."""

    def __init__(self, scorer: Scorer, topic_prefix: str = "") -> None:
        self.scorer = scorer
        self._prefix = topic_prefix

    def handle(
        self, source: Source, key: bytes | None, value: bytes | None, record: DeviceRecord | None
    ) -> Outcome:
        """Decode, validate, and run one message through the engine."""
        message = decode(source.topic.removeprefix(self._prefix), key, value)
        if isinstance(message, Rejection):
            return Outcome(
                rejected=rejected(
                    message,
                    topic=source.topic,
                    partition=source.partition,
                    offset=source.offset,
                    key=key,
                    value=value,
                )
            )
        record = record if record is not None else DeviceRecord()
        outcome = Outcome(device_id=message.device_id)
        if source.offset is not None and record.offsets.get(source.topic, -1) >= source.offset:
            outcome.duplicate = True
            return outcome
        offsets = dict(record.offsets)
        if source.offset is not None:
            offsets[source.topic] = source.offset
        last_reading, deferred = record.last_reading, record.deferred_failure
        state = record.state
        steps: list[Step] = []
        if isinstance(message, FailureEvent):
            if last_reading is None or message.ts > last_reading:
                deferred = message
            else:
                steps.append(self.scorer.on_failure(state, message))
                outcome.failures.append(message)
        elif isinstance(message, Feedback):
            steps.append(self.scorer.on_feedback(state, message))
        else:
            outcome.reading = message
            steps.append(self.scorer.on_telemetry(state, message))
            last_reading = message.ts if last_reading is None else max(last_reading, message.ts)
            if deferred is not None and deferred.ts <= last_reading:
                steps.append(self.scorer.on_failure(steps[-1].state, deferred))
                outcome.failures.append(deferred)
                deferred = None
        for step in steps:
            state = step.state
            outcome.predictions += step.predictions
            outcome.alerts += step.alerts
            outcome.examples += step.examples
        outcome.record = DeviceRecord(
            state=state, offsets=offsets, last_reading=last_reading, deferred_failure=deferred
        )
        return outcome


INPUT_TOPICS = (topics.TELEMETRY, topics.FAILURES, topics.FEEDBACK)
