"""One input message in, everything it causes out: the worker's pure core.

The Faust agent only moves bytes: it hands each message to :class:`Processor` and
writes what comes back (state, points, alerts, training examples, rejects). Keeping
this step free of I/O makes it testable without Kafka and identical to the backtest.

No exception leaves :meth:`Processor.handle`: whatever one message causes, it comes
back as a rejection (dead-letter) with the cause, and the device's record is the one
passed in, untouched (the engine works on a copy of the state).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from pipeline import topics
from pipeline.engine import DeviceState, Step
from pipeline.engine.lane import Lane
from pipeline.engine.state import MAX_STATE_BYTES
from pipeline.engine.timepolicy import FROM_THE_FUTURE
from pipeline.streaming.intake import (
    Decoded,
    InputMessage,
    Rejection,
    decode,
    decode_many,
    rejected,
)
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

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    """The last message of one input topic applied to a device: where, and its event time.

    ``ts`` is the newest event time applied from that topic (POSIX seconds).
    """

    partition: int | None
    offset: int
    ts: float
    index: int = -1
    """Position of the reading in its ``TelemetryBatch`` (-1: a message of its own)."""

    def __reduce__(self) -> tuple[type[Applied], tuple[int | None, int, float, int]]:
        # Pickled with every state write; the dataclass default (via fields()) is slower.
        return (Applied, (self.partition, self.offset, self.ts, self.index))


@dataclass(slots=True)
class DeviceRecord:
    """The value of the device-state table: engine state plus what was already applied.

    Idempotence is keyed on (topic, partition): ``offsets`` holds, per input topic, the
    partition and offset of the last message applied. A message at or below that offset
    on the same partition is a replay and is skipped, unless its event time is newer
    than everything applied from the topic: then the partition's offsets were reset
    (the topic was re-created) and the message is applied (an ``offset_reset``). A
    message from another partition than the recorded one (partitions were added) is
    applied and becomes the reference (a ``partition_change``). Both are logged and
    counted in ``pipeline_health``, never skipped silently.

    A failure is applied the moment it arrives, whenever it is dated (a dead device
    sends no later reading to wait for): labels, the open alert, the count. Kafka orders
    messages within a topic only, so a lagging ``telemetry`` can deliver readings dated
    before the failure after it: such a reading is scored on the device's history (the
    feature reset waits for the first reading dated after ``failure``) and labelled by
    ``failure`` at once.
    """

    state: DeviceState | None = None
    offsets: dict[str, Applied] = field(default_factory=dict)
    last_reading: datetime | None = None
    failure: FailureEvent | None = None
    suspect: datetime | None = None
    """Time of the device's previous reading if it was refused as from the future."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Pickled with every state write: the dataclass default (via fields()) is slower,
        # and an aware datetime pickles in about 9 µs, its microseconds in 0.3 µs.
        return (
            _record,
            (
                self.state,
                self.offsets,
                _micros(self.last_reading),
                self.failure,
                _micros(self.suspect),
            ),
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=micros)


def _record(
    state: DeviceState | None,
    offsets: dict[str, Applied],
    last_reading: int | None,
    failure: FailureEvent | None,
    suspect: int | None,
) -> DeviceRecord:
    """A :class:`DeviceRecord` from its pickle (times in microseconds since the epoch)."""
    return DeviceRecord(state, offsets, _moment(last_reading), failure, _moment(suspect))


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from."""

    topic: str
    partition: int | None
    offset: int | None
    index: int | None = None
    """Position of the reading in its ``TelemetryBatch`` (``None``: a message of its own)."""


@dataclass(slots=True)
class Outcome:
    """What handling one message produced.

    ``record`` is the device's new record (``None``: keep the old one). A rejected
    message may still come with a record (the offset it consumed, a suspect time).
    """

    device_id: str | None = None
    record: DeviceRecord | None = None
    duplicate: bool = False
    offset_reset: bool = False
    partition_change: bool = False
    internal_error: bool = False
    reading: Telemetry | None = None
    predictions: list[Prediction] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    examples: list[TrainingExample] = field(default_factory=list)
    failures: list[FailureEvent] = field(default_factory=list)
    rejected: Rejected | None = None
    marker: int | None = None
    """The lane completed this epoch with the message: a watermark marker is due."""
    deferred: bool = False
    """A failure held by its lane until the lane moves past it (``Lane.defers``)."""
    released: list[Outcome] = field(default_factory=list)
    """Outcomes of other devices' held events the message released (``handle`` only)."""

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


class UnsafeOutputError(ValueError):
    """The engine produced something that must not leave the worker (non-finite, too big)."""


@dataclass(slots=True)
class Prepared:
    """A message decoded, checked for replay and admitted by the time policy: ready for
    the engine once its lane has the models it needs (:meth:`Processor.needs`)."""

    source: Source
    key: bytes | None
    value: bytes | None
    message: InputMessage
    record: DeviceRecord
    offsets: dict[str, Applied]
    outcome: Outcome


class Processor:
    """Applies one input partition's messages to device records through its :class:`Lane`."""

    def __init__(self, lane: Lane, topic_prefix: str = "", partitions: int = 1) -> None:
        self.lane = lane
        self.scorer = lane.scorer
        self.gate = lane.gate
        self._prefix = topic_prefix
        self._partitions = partitions

    def decode(self, source: Source, key: bytes | None, value: bytes | None) -> list[Decoded]:
        """Every reading of one message (one entry unless it is a ``TelemetryBatch``),
        each decoded and checked on its own; never raises."""
        try:
            return decode_many(
                source.topic.removeprefix(self._prefix),
                key,
                value,
                partition=source.partition,
                partitions=self._partitions,
            )
        except Exception as error:  # the per-message boundary
            log.exception("message_failed", topic=source.topic, offset=source.offset)
            return [(None, Rejection(f"internal error: {type(error).__name__}: {error}"[:1000]))]

    def refuse(
        self, source: Source, key: bytes | None, value: bytes | None, rejection: Rejection
    ) -> Outcome:
        """The outcome of a message (or a reading of a batch) that did not decode."""
        return self._reject(source, key, value, rejection.reason, rejection.value)

    def handle(
        self,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        record: DeviceRecord | None,
        *,
        record_of: Callable[[str], DeviceRecord | None] | None = None,
    ) -> Outcome:
        """Decode, validate, and run one message through the engine; never raises.

        Events the lane held and the message releases are applied first: those of the
        message's own device are merged into the outcome, the others' outcomes (their
        records read with ``record_of``) are in ``released``. Installs no model: the
        worker goes through :meth:`prepare` / :meth:`apply` for that.
        """
        prepared = self.prepare(source, key, value, record)
        if isinstance(prepared, Outcome):
            return prepared
        own: list[Outcome] = []
        others: list[Outcome] = []
        for held in self.released(prepared):
            if held.device_id == prepared.message.device_id:
                done = self.apply_held(held, record)
                record = done.record if done.record is not None else record
                own.append(done)
            else:
                other = record_of(held.device_id) if record_of is not None else None
                others.append(self.apply_held(held, other))
        if own:
            again = self.prepare(source, key, value, record)
            if isinstance(again, Outcome):
                return again
            prepared = again
        outcome = self.apply(prepared)
        for done in own:
            outcome.failures[:0] = done.failures
            outcome.alerts[:0] = done.alerts
            outcome.examples[:0] = done.examples
        outcome.released = others
        return outcome

    def release_all(self, record_of: Callable[[str], DeviceRecord | None]) -> list[Outcome]:
        """Apply every event the lane holds (its input ended, or it went idle)."""
        return [
            self.apply_held(held, record_of(held.device_id))
            for held in self.lane.due(math.inf)
            if isinstance(held, FailureEvent | Feedback)
        ]

    def prepare(
        self, source: Source, key: bytes | None, value: bytes | None, record: DeviceRecord | None
    ) -> Outcome | Prepared:
        """Decode and admit one single-reading message: a final :class:`Outcome`
        (rejected, refused or a replayed duplicate) or a :class:`Prepared` for
        :meth:`apply`; never raises."""
        try:
            message = decode(source.topic.removeprefix(self._prefix), key, value)
            if isinstance(message, Rejection):
                return self._reject(source, key, value, message.reason)
            return self._admit(source, key, value, message, record)
        except Exception as error:  # the per-message boundary: one message, one reject
            return self._failed(source, key, value, error)

    def admit(
        self,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        message: InputMessage,
        record: DeviceRecord | None,
    ) -> Outcome | Prepared:
        """:meth:`prepare` for a message (or a reading of a batch) already decoded;
        ``value=None``: a rejection carries the message's own JSON."""
        try:
            return self._admit(source, key, value, message, record)
        except Exception as error:  # the per-message boundary: one message, one reject
            return self._failed(source, key, _raw(value, message), error)

    def needs(self, prepared: Prepared) -> int | None:
        """The model epoch the lane must have installed before :meth:`apply` (``None``: ready)."""
        message = prepared.message
        return self.lane.needs(message.ts.timestamp()) if isinstance(message, Telemetry) else None

    def apply(self, prepared: Prepared) -> Outcome:
        """Run a prepared message through the engine; never raises."""
        try:
            return self._apply(prepared)
        except Exception as error:  # the per-message boundary: one message, one reject
            return self._failed(
                prepared.source, prepared.key, _raw(prepared.value, prepared.message), error
            )

    def unreadable(
        self, source: Source, key: bytes | None, value: bytes | None, error: Exception
    ) -> Outcome:
        """The outcome of a message whose device record could not be read."""
        outcome = self._reject(
            source, key, value, f"device record unreadable: {type(error).__name__}: {error}"
        )
        outcome.internal_error = True
        return outcome

    def mismatched_key(self, source: Source, key: bytes | None, value: bytes | None) -> Outcome:
        """The outcome of a message whose key is not its device id."""
        return self._reject(source, key, value, "message key is not its device_id")

    def _failed(
        self, source: Source, key: bytes | None, value: bytes | None, error: Exception
    ) -> Outcome:
        if isinstance(error, UnsafeOutputError):
            log.warning(
                "message_refused", topic=source.topic, offset=source.offset, reason=str(error)
            )
            return self._reject(source, key, value, f"refused: {error}")
        log.exception("message_failed", topic=source.topic, offset=source.offset)
        reason = f"internal error: {type(error).__name__}: {error}"
        outcome = self._reject(source, key, value, reason[:1000])
        outcome.internal_error = True
        return outcome

    def _reject(
        self,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        own_value: bytes | None = None,
    ) -> Outcome:
        return Outcome(
            rejected=rejected(
                Rejection(reason, own_value),
                topic=source.topic,
                partition=source.partition,
                offset=source.offset,
                key=key,
                value=value,
                index=source.index,
            )
        )

    def _admit(
        self,
        source: Source,
        key: bytes | None,
        value: bytes | None,
        message: InputMessage,
        record: DeviceRecord | None,
    ) -> Outcome | Prepared:
        record = record if record is not None else DeviceRecord()
        gate = self.gate
        if record.last_reading is not None:
            gate.observe(record.last_reading.timestamp())
        t = message.ts.timestamp()
        outcome = Outcome(device_id=message.device_id)
        offsets = record.offsets
        if source.offset is not None:
            seen = offsets.get(source.topic)
            index = source.index if source.index is not None else -1
            if seen is not None and seen.partition != source.partition:
                outcome.partition_change = True
            elif seen is not None and (source.offset, index) <= (seen.offset, seen.index):
                if t <= seen.ts:
                    outcome.duplicate = True
                    return outcome
                outcome.offset_reset = True
            newest_ts = t if seen is None or outcome.partition_change else max(t, seen.ts)
            applied = Applied(source.partition, source.offset, newest_ts, index)
            offsets = {**offsets, source.topic: applied}

        if isinstance(message, Telemetry):
            newest = record.last_reading.timestamp() if record.last_reading else None
            suspect = record.suspect.timestamp() if record.suspect else None
            reason = gate.reading(t, newest, suspect)
            if reason is not None:
                refused = self._reject(source, key, _raw(value, message), reason)
                refused.device_id = message.device_id
                refused.record = DeviceRecord(
                    record.state,
                    offsets,
                    record.last_reading,
                    record.failure,
                    message.ts if reason.startswith(FROM_THE_FUTURE) else None,
                )
                return refused
        else:
            reason = gate.event(t)
            if reason is not None:
                refused = self._reject(source, key, _raw(value, message), reason)
                refused.device_id = message.device_id
                refused.record = DeviceRecord(
                    record.state, offsets, record.last_reading, record.failure, record.suspect
                )
                return refused
            if self.lane.defers(message):
                # Held in the lane (its changelog record): the device record keeps only
                # the offset, so a replayed copy is recognised.
                outcome.deferred = True
                outcome.record = DeviceRecord(
                    record.state, offsets, record.last_reading, record.failure, record.suspect
                )
                return outcome
        return Prepared(source, key, value, message, record, offsets, outcome)

    def released(self, prepared: Prepared) -> list[FailureEvent | Feedback]:
        """Failures and verdicts the lane held that a prepared reading releases (dated
        before it), in time order."""
        message = prepared.message
        if not isinstance(message, Telemetry):
            return []
        return [
            e
            for e in self.lane.due(message.ts.timestamp())
            if isinstance(e, FailureEvent | Feedback)
        ]

    def apply_held(self, event: FailureEvent | Feedback, record: DeviceRecord | None) -> Outcome:
        """Apply an event the lane held (its message was acknowledged when it was held)."""
        record = record if record is not None else DeviceRecord()
        topic = topics.FAILURES if isinstance(event, FailureEvent) else topics.FEEDBACK
        source = Source(self._prefix + topic, None, None)
        outcome = Outcome(device_id=event.device_id)
        prepared = Prepared(source, None, None, event, record, record.offsets, outcome)
        return self.apply(prepared)

    def _apply(self, prepared: Prepared) -> Outcome:
        message, record, outcome = prepared.message, prepared.record, prepared.outcome
        t = message.ts.timestamp()
        lane = self.lane
        # Copy-on-write: the engine updates the state in place, the old record stays intact.
        state = record.state.copy() if record.state is not None else None
        last_reading, failure = record.last_reading, record.failure
        steps: list[Step] = []
        if isinstance(message, FailureEvent):
            steps.append(self._failure(state, message))
            outcome.failures.append(message)
            failure = message
        elif isinstance(message, Feedback):
            steps.append(self.scorer.on_feedback(state, message))
        else:
            outcome.reading = message
            if failure is not None and message.ts > failure.ts:
                # A new life of the device (a replacement keeps the id): forget the old one.
                if state is not None:
                    state.reset_features()
                failure = None
            outcome.marker = lane.advance(t)
            steps.append(self.scorer.on_telemetry(state, message))
            last_reading = message.ts
            if failure is not None:
                # A reading the failure overtook: scored on the history it belongs to,
                # and its label is known now (stamped with the failure's time, as the
                # backtest, which sees the failure after it, stamps it).
                overtaken = self._failure(steps[-1].state, failure)
                outcome.examples += lane.stamp(overtaken.examples, failure.ts.timestamp())
                steps.append(overtaken._replace(examples=[]))
        for step in steps:
            state = step.state
            outcome.predictions += step.predictions
            outcome.alerts += step.alerts
            outcome.examples += lane.stamp(step.examples, t)
        assert state is not None
        check_outputs(state, outcome)
        if isinstance(message, Telemetry):
            self.gate.observe(t)
        outcome.record = DeviceRecord(state, prepared.offsets, last_reading, failure, None)
        return outcome

    def _failure(self, state: DeviceState | None, failure: FailureEvent) -> Step:
        """``Scorer.on_failure``, but the device's feature history is kept until a reading
        dated after the failure arrives: readings the failure overtook (Kafka orders each
        topic on its own) are then scored exactly as in time order, as the backtest does."""
        if state is None:
            return self.scorer.on_failure(None, failure)
        vals, n, alerted = state.vals, state.n, state.alerted
        step = self.scorer.on_failure(state, failure)
        step.state.vals, step.state.n, step.state.alerted = vals, n, alerted
        return step


def check_outputs(state: DeviceState, outcome: Outcome) -> None:
    """Raise :class:`UnsafeOutputError` unless all numbers are finite and the state fits."""
    for p in outcome.predictions:
        for name, number in (
            ("risk", p.risk),
            ("failure_probability", p.failure_probability),
            ("anomaly_score", p.anomaly_score),
        ):
            if not 0.0 <= number <= 1.0:
                raise UnsafeOutputError(f"{name} {number!r} is not a probability")
    for example in outcome.examples:
        if not math.isfinite(sum(example.features.values())):
            raise UnsafeOutputError(f"training example at {example.ts} has a non-finite feature")
    if state.pend_width:
        width = state.pend_width[-1]
        if not math.isfinite(sum(state.pend_vec[len(state.pend_vec) - width :])):
            raise UnsafeOutputError("a buffered feature vector is not finite")
    if not math.isfinite(sum(state.vals)):
        raise UnsafeOutputError("the device's feature state is not finite")
    size = state.estimated_bytes()
    if size > MAX_STATE_BYTES:
        raise UnsafeOutputError(
            f"device state would grow to {size} bytes, over the limit of {MAX_STATE_BYTES}"
        )


INPUT_TOPICS = (topics.TELEMETRY, topics.FAILURES, topics.FEEDBACK)


def _raw(value: bytes | None, message: InputMessage) -> bytes:
    """The bytes a rejection carries: the message as received, or (``None``: a reading of
    a batch, a held event) its own JSON, serialised only when something is rejected."""
    return value if value is not None else message.model_dump_json().encode()
