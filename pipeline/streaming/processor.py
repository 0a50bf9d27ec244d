"""One input message in, everything it causes out: the worker's pure core.

The Faust agent only moves bytes: it hands each message to :class:`Processor` and
writes what comes back (state, points, alerts, training examples, rejects). Keeping
this step free of I/O makes it testable without Kafka and identical to the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline import topics
from pipeline.engine import DeviceState, Scorer, Step
from pipeline.streaming.intake import Rejection, decode, rejected
from pipeline.streaming.lineprotocol import alert_line, prediction_line
from schemas import Alert, FailureEvent, Feedback, Prediction, Rejected, TrainingExample


@dataclass(slots=True)
class DeviceRecord:
    """The value of the device-state table: engine state plus the offsets already applied.

    The offsets make replays after a crash idempotent: a message at or below the
    recorded offset of its topic has already changed this state and is skipped.
    """

    state: DeviceState | None = None
    offsets: dict[str, int] = field(default_factory=dict)


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
    predictions: list[Prediction] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    examples: list[TrainingExample] = field(default_factory=list)
    failures: list[FailureEvent] = field(default_factory=list)
    rejected: Rejected | None = None

    def lines(self) -> list[str]:
        """The InfluxDB points of this outcome: predictions first, then alerts."""
        return [prediction_line(p) for p in self.predictions] + [alert_line(a) for a in self.alerts]


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
        step: Step
        if isinstance(message, FailureEvent):
            step = self.scorer.on_failure(record.state, message)
            outcome.failures.append(message)
        elif isinstance(message, Feedback):
            step = self.scorer.on_feedback(record.state, message)
        else:
            step = self.scorer.on_telemetry(record.state, message)
        offsets = dict(record.offsets)
        if source.offset is not None:
            offsets[source.topic] = source.offset
        outcome.record = DeviceRecord(state=step.state, offsets=offsets)
        outcome.predictions = step.predictions
        outcome.alerts = step.alerts
        outcome.examples = step.examples
        return outcome


INPUT_TOPICS = (topics.TELEMETRY, topics.FAILURES, topics.FEEDBACK)
