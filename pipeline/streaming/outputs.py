"""What processing a message caused, staged for the checkpoint of its batch.

The :class:`ScoringLoop` hands every :class:`Outcome` to :meth:`Outputs.route`: the
device record is sealed and staged for the ``device-state`` table, points go to the
InfluxDB sink, and alerts, training examples, watermark markers and rejects are sent
to Kafka with their deliveries registered in the :class:`Checkpointer`, which waits
for them before it writes states and acknowledges input (``checkpoint.py``). Nothing
here commits: a message's effects become durable only with its checkpoint.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from pydantic import SecretStr

from pipeline.engine import Evaluator
from pipeline.streaming.checkpoint import Checkpointer, Staged
from pipeline.streaming.counters import Counters
from pipeline.streaming.processor import Outcome
from pipeline.streaming.published import PublishedAlerts
from pipeline.streaming.records import DEVICES
from pipeline.streaming.rollup import Rollup
from pipeline.streaming.signing import seal
from pipeline.streaming.sink import InfluxSink
from pipeline.streaming.training import lane_key
from schemas import LaneWatermark, Rejected

log = structlog.get_logger(__name__)

Event = Any


class Topic(Protocol):
    """A Faust topic (``send`` returns the delivery to await)."""

    async def send(self, *, key: bytes | None, value: bytes, **kwargs: Any) -> Any: ...


class Outputs:
    """Stages outcomes for the checkpoint; the scoring loop's ``route``, ``done`` and
    ``send_marker`` ports.

    ``partitions``: the deployment's partition count (a marker goes to every
    ``training-examples`` partition, so every trainer sees every lane);
    ``sink_readings``: also write each reading's raw metrics (``reading`` points).
    """

    def __init__(
        self,
        checkpoint: Checkpointer,
        *,
        alerts: Topic,
        examples: Topic,
        dead_letter: Topic,
        sink: InfluxSink,
        rollup: Rollup,
        evaluator: Evaluator,
        published: PublishedAlerts,
        counters: Counters,
        signing_key: SecretStr,
        partitions: int,
        sink_readings: bool,
    ) -> None:
        self._checkpoint = checkpoint
        self._alerts = alerts
        self._examples = examples
        self._dead_letter = dead_letter
        self._sink = sink
        self._rollup = rollup
        self._evaluator = evaluator
        self._published = published
        self._counters = counters
        self._key = signing_key
        self._partitions = partitions
        self._sink_readings = sink_readings

    async def send(self, topic: Topic, key: bytes | None, value: bytes, **kwargs: Any) -> None:
        """Send to Kafka; the checkpoint waits for the delivery before it writes states."""
        self._checkpoint.add_send(await topic.send(key=key, value=value, **kwargs))

    async def send_rejected(self, envelope: Rejected) -> None:
        """Log a rejected message and send its envelope to ``dead-letter``."""
        self._counters.rejected += 1
        log.warning(
            "message_rejected",
            topic=envelope.source_topic,
            partition=envelope.partition,
            offset=envelope.offset,
            reason=envelope.reason,
        )
        await self.send(self._dead_letter, envelope.key, envelope.model_dump_json().encode())

    async def send_marker(self, partition: int, complete_through: int, idle: bool) -> None:
        """Lane ``partition``'s watermark marker, to every ``training-examples`` partition."""
        value = LaneWatermark(
            partition=partition, complete_through=complete_through, idle=idle
        ).model_dump_json()
        for training_partition in range(self._partitions):
            await self.send(
                self._examples, lane_key(partition), value.encode(), partition=training_partition
            )

    async def done(self, event: Event) -> None:
        """Every effect of input message ``event`` is staged: acknowledge it at the commit."""
        message = event.message
        self._counters.last_offsets[(message.topic, message.partition)] = message.offset
        self._checkpoint.add_event(event)

    async def route(self, outcome: Outcome, event: Event) -> None:
        """Stage what ``outcome`` caused (``event`` is the message being processed)."""
        counters = self._counters
        message = event.message
        if outcome.internal_error:
            counters.internal_errors += 1
        if outcome.offset_reset or outcome.partition_change:
            kind = "offset_reset" if outcome.offset_reset else "partition_change"
            if outcome.offset_reset:
                counters.offset_resets += 1
            else:
                counters.partition_changes += 1
            log.warning(
                kind,
                device_id=outcome.device_id,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
        if outcome.device_id is not None and outcome.record is not None:
            self._checkpoint.stage(
                DEVICES,
                outcome.device_id.encode(),
                Staged(outcome.record, seal(self._key, outcome.record), event),
            )
        if outcome.rejected is not None:
            await self.send_rejected(outcome.rejected)
            return
        if outcome.deferred:
            return
        if outcome.duplicate:
            counters.duplicates += 1
            log.info(
                "duplicate_skipped",
                device_id=outcome.device_id,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
            return
        assert outcome.record is not None  # accepted: neither rejected nor a duplicate
        await self._sink.room()  # InfluxDB down: processing waits here (backpressure)
        self._sink.add(outcome.lines(readings=self._sink_readings))
        alert_open = outcome.record.state is not None and outcome.record.state.alert_id is not None
        for prediction in outcome.predictions:
            self._rollup.offer(prediction, alert_open=alert_open)
            counters.readings += 1
            self._evaluator.observe_prediction(prediction)
        for failure in outcome.failures:
            self._evaluator.observe_failure(failure.device_id, failure.ts)
        for alert in outcome.alerts:
            self._evaluator.observe_alert(alert)
            if alert in self._published:
                continue
            await self.send(
                self._alerts, alert.device_id.encode(), alert.model_dump_json().encode()
            )
            self._published.add(alert)
            log.info(
                "alert_published",
                alert_id=alert.alert_id,
                action=alert.action,
                device_id=alert.device_id,
                partition=message.partition,
                offset=message.offset,
            )
        for example in outcome.examples:
            label_key = (example.group, example.label)
            counters.labels[label_key] = counters.labels.get(label_key, 0) + 1
            await self.send(
                self._examples, example.group.encode(), example.model_dump_json().encode()
            )
