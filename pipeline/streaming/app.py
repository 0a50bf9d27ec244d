"""The Faust application: agents that drive the engine over Kafka, and their I/O.

Built by :func:`create_app` (no module-level app, no hard-coded broker). Data flows
one way, as in DESIGN.md:

- ``device_events`` reads ``telemetry``, ``failures`` and ``feedback`` (co-partitioned
  by ``device_id``), runs each message through the :class:`Processor`, and at every
  checkpoint writes points to InfluxDB, alerts / training examples / rejects to Kafka,
  the new device states to the table, and only then acknowledges the messages;
- ``train`` reads ``training-examples`` (keyed by model group) and publishes signed
  fleet-model snapshots to ``models``; its messages are acknowledged only once a
  snapshot containing them is on the topic;
- a task follows ``models`` on every worker and installs verified snapshots.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from pydantic import ValidationError

from pipeline import topics
from pipeline.catalogue_file import load_catalogue
from pipeline.engine import EngineConfig, Evaluator, FleetModel, Scorer, Trainer
from pipeline.security import faust_broker_credentials, kafka_options
from pipeline.settings import Settings
from pipeline.streaming.health import HealthReporter
from pipeline.streaming.influx_writer import InfluxWriter, is_permanent
from pipeline.streaming.intake import Rejection, describe_validation_error, rejected
from pipeline.streaming.models import ModelRegistry
from pipeline.streaming.processor import INPUT_TOPICS, DeviceRecord, Outcome, Processor, Source
from pipeline.streaming.published import PublishedAlerts
from pipeline.streaming.rollup import Rollup
from pipeline.streaming.signing import seal, sign_snapshot, unseal
from pipeline.streaming.sink import InfluxSink
from schemas import Rejected, TrainingExample

log = structlog.get_logger(__name__)

# Faust's own annotations are incomplete (untyped decorators, missing generics);
# inside this module its objects are handled as ``Any`` rather than fought with.
Event = Any
Stream = Any

YIELD_EVERY = 32
"""Messages the agent handles before it yields to the event loop."""

MODEL_PUBLISH_INTERVAL_S = 2.0
"""A trainer with unpublished examples publishes at least this often, even if not due."""


RECORD_CACHE_SIZE = 250_000
"""Device records kept unpickled in memory; the table (RocksDB + changelog) holds all."""


class RecordCache:
    """A bounded least-recently-used map of device records already read from the table."""

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[str, DeviceRecord] = OrderedDict()
        self._capacity = capacity

    def get(self, device_id: str) -> DeviceRecord | None:
        record = self._items.get(device_id)
        if record is not None:
            self._items.move_to_end(device_id)
        return record

    def put(self, device_id: str, record: DeviceRecord) -> None:
        self._items[device_id] = record
        self._items.move_to_end(device_id)
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


@dataclass(frozen=True, slots=True)
class Staged:
    """A device's newest record, sealed when it was made, and the message that made it.

    The engine updates a device's state in place, so the record object keeps changing
    as later messages arrive; the sealed bytes are the state as of ``event`` and are what
    the table receives once the checkpoint covering ``event`` is durable.
    """

    record: DeviceRecord
    sealed: bytes
    event: Event


@dataclass
class Checkpoint:
    """Work done since the last checkpoint: what must be durable before the acks."""

    events: list[Event] = field(default_factory=list)
    states: dict[str, Staged] = field(default_factory=dict)
    sends: list[Awaitable[Any]] = field(default_factory=list)


class Worker:
    """Everything one worker process holds besides Faust itself."""

    def __init__(
        self, settings: Settings, config: EngineConfig, published: PublishedAlerts
    ) -> None:
        self.settings = settings
        self.config = config
        self.scorer = Scorer(config, load_catalogue(settings.metric_catalogue))
        self.processor = Processor(self.scorer, settings.topic_prefix)
        self.evaluator = Evaluator(config.horizon.total_seconds())
        self.published = published
        self.writer = InfluxWriter(settings)
        self.sink = InfluxSink(
            self.writer,
            batch_size=settings.sink_batch_size,
            max_buffered=settings.sink_max_buffered_points,
            is_permanent=is_permanent,
        )
        self.rollup = Rollup(
            period_s=settings.rollup_period_s, worker=settings.worker_id, run=uuid.uuid4().hex[:8]
        )
        self.models = ModelRegistry(settings.model_signing_key, self.scorer.install)
        self.trainers: dict[str, Trainer] = {}
        self.pending = Checkpoint()
        self.records = RecordCache(RECORD_CACHE_SIZE)
        self.checkpoint_lock = asyncio.Lock()
        self.readings = 0
        self.rejected = 0
        self.duplicates = 0
        self.offset_resets = 0
        self.partition_changes = 0
        self.internal_errors = 0
        self.last_offsets: dict[tuple[str, int], int] = {}
        self.labels: dict[tuple[str, bool], int] = {}

    def trainer(self, group: str) -> Trainer:
        """This worker's trainer of ``group``, resumed from the newest published model."""
        trainer = self.trainers.get(group)
        if trainer is None:
            trainer = Trainer(self.config, group)
            latest = self.models.latest.get(group)
            if latest is not None:
                resume(trainer, latest[1])
            self.trainers[group] = trainer
        return trainer


def resume(trainer: Trainer, model: FleetModel) -> None:
    """Continue training from a published snapshot instead of from scratch."""
    trainer.pipeline = copy.deepcopy(model.pipeline)
    trainer.version = model.version
    trainer.examples_seen = model.examples_seen
    trainer.positives_seen = model.positives_seen


def _faust_settings(settings: Settings) -> dict[str, Any]:
    store = "rocksdb://" if settings.table_store == "rocksdb" else "memory://"
    return {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "store": store,
        "datadir": str(Path(settings.state_dir) / "worker" / settings.worker_id),
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": 1,
        "topic_allow_declare": True,
        "web_enabled": False,
        "autodiscover": False,
        "producer_max_request_size": 8 * 1024 * 1024,
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "broker_commit_interval": 1.0,
        "stream_buffer_maxsize": 8192,
        "table_standby_replicas": 0,
        "consumer_auto_offset_reset": "earliest",
        "producer_linger": 0.02,
        "producer_max_batch_size": 1024 * 1024,
        "processing_guarantee": "at_least_once",
        "broker_credentials": faust_broker_credentials(settings),
    }


def create_app(settings: Settings, config: EngineConfig, published: PublishedAlerts) -> faust.App:
    """Build the Faust app and its agents for one worker process."""
    app: Any = faust.App(settings.worker_id, **_faust_settings(settings))
    worker = Worker(settings, config, published)
    app.forewarn = worker  # reachable from tests and tasks

    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*(settings.topic(name) for name in INPUT_TOPICS), **raw)
    alerts_topic = app.topic(settings.topic(topics.ALERTS), **raw)
    examples_topic = app.topic(settings.topic(topics.TRAINING_EXAMPLES), **raw)
    dead_letter_topic = app.topic(settings.topic(topics.DEAD_LETTER), **raw)
    models_topic = app.topic(settings.topic(topics.MODELS), **raw)
    # Values are pickles sealed with the signing key: the changelog is a Kafka topic, so
    # its bytes are checked (HMAC) before they are unpickled.
    table = app.Table(
        "device-state",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
        changelog_topic=app.topic(
            settings.topic(topics.DEVICE_STATE_CHANGELOG),
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
            compacting=True,
        ),
    )
    key = settings.model_signing_key
    streams: dict[str, Stream] = {}

    def current_record(device_key: bytes) -> DeviceRecord | None:
        try:
            device_id = device_key.decode()
        except UnicodeDecodeError:
            return None  # not a device id: intake rejects the message
        staged = worker.pending.states.get(device_id)
        if staged is not None:
            return staged.record
        record = worker.records.get(device_id)
        if record is not None:
            return record
        sealed = table.get(device_key)
        if sealed is None:
            return None
        record = cast(DeviceRecord, unseal(key, sealed))
        worker.records.put(device_id, record)
        return record

    @app.on_partitions_revoked.connect
    async def forget_records(*_: Any, **__: Any) -> None:
        # Another worker may own these devices now: read them from the table again.
        worker.records.clear()

    async def send_rejected(envelope: Rejected) -> None:
        worker.rejected += 1
        log.warning(
            "message_rejected",
            topic=envelope.source_topic,
            partition=envelope.partition,
            offset=envelope.offset,
            reason=envelope.reason,
        )
        key = envelope.key if envelope.key is not None else None
        fut = await dead_letter_topic.send(key=key, value=envelope.model_dump_json().encode())
        worker.pending.sends.append(fut)

    async def route(outcome: Outcome, event: Event) -> None:
        message = event.message
        if outcome.internal_error:
            worker.internal_errors += 1
        if outcome.offset_reset or outcome.partition_change:
            kind = "offset_reset" if outcome.offset_reset else "partition_change"
            if outcome.offset_reset:
                worker.offset_resets += 1
            else:
                worker.partition_changes += 1
            log.warning(
                kind,
                device_id=outcome.device_id,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
        if outcome.device_id is not None and outcome.record is not None:
            worker.pending.states[outcome.device_id] = Staged(
                outcome.record, seal(key, outcome.record), event
            )
        if outcome.rejected is not None:
            await send_rejected(outcome.rejected)
            return
        if outcome.duplicate:
            worker.duplicates += 1
            log.info(
                "duplicate_skipped",
                device_id=outcome.device_id,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
            return
        assert outcome.record is not None  # accepted: neither rejected nor a duplicate
        worker.sink.add(outcome.lines(readings=settings.sink_readings))
        alert_open = outcome.record.state is not None and outcome.record.state.alert_id is not None
        for prediction in outcome.predictions:
            worker.rollup.offer(prediction, alert_open=alert_open)
            worker.readings += 1
            worker.evaluator.observe_prediction(prediction)
        for failure in outcome.failures:
            worker.evaluator.observe_failure(failure.device_id, failure.ts)
        for alert in outcome.alerts:
            worker.evaluator.observe_alert(alert)
            if alert in worker.published:
                continue
            fut = await alerts_topic.send(
                key=alert.device_id.encode(), value=alert.model_dump_json().encode()
            )
            worker.published.add(alert)
            worker.pending.sends.append(fut)
        for example in outcome.examples:
            label_key = (example.group, example.label)
            worker.labels[label_key] = worker.labels.get(label_key, 0) + 1
            fut = await examples_topic.send(
                key=example.group.encode(), value=example.model_dump_json().encode()
            )
            worker.pending.sends.append(fut)

    async def checkpoint() -> None:
        """Make the batch durable in order: points, Kafka outputs, state; then ack."""
        async with worker.checkpoint_lock:
            batch = worker.pending
            if not batch.events and not worker.sink.buffered:
                return
            # Staged states stay readable while the sink may block on an outage.
            worker.pending = Checkpoint(states=dict(batch.states))
            started = time.monotonic()
            worker.sink.add(worker.rollup.drain())
            await worker.sink.flush()
            for point, reason in worker.sink.take_refused():
                envelope = rejected(
                    Rejection(f"InfluxDB refused the point: {reason}"),
                    topic="influxdb",
                    partition=None,
                    offset=None,
                    key=None,
                    value=point.encode(),
                )
                worker.rejected += 1
                batch.sends.append(
                    await dead_letter_topic.send(value=envelope.model_dump_json().encode())
                )
            flushed = time.monotonic()
            if batch.sends:
                await asyncio.gather(*batch.sends)
            sent = time.monotonic()
            if settings.fault_pause_after_points_s and batch.states:
                log.warning("checkpoint_paused", states=len(batch.states))
                await asyncio.sleep(settings.fault_pause_after_points_s)
            stream = streams["device_events"]
            for device_id, staged in batch.states.items():
                stream._set_current_event(staged.event)  # the table writes to its partition
                table[device_id.encode()] = staged.sealed
                worker.records.put(device_id, staged.record)
            stream._set_current_event(None)
            for device_id, staged in batch.states.items():
                if worker.pending.states.get(device_id) is staged:
                    del worker.pending.states[device_id]
            for event in batch.events:
                await stream.ack(event)
            log.debug(
                "checkpoint",
                events=len(batch.events),
                states=len(batch.states),
                sends=len(batch.sends),
                flush_ms=round((flushed - started) * 1000, 1),
                sends_ms=round((sent - flushed) * 1000, 1),
                state_ms=round((time.monotonic() - sent) * 1000, 1),
            )

    @app.agent(inputs)
    async def device_events(stream: Stream) -> None:
        manual = streams["device_events"] = stream.noack()
        async for event in manual.events():
            message = event.message
            source = Source(message.topic, message.partition, message.offset)
            key = message.key if isinstance(message.key, bytes) else None
            value = message.value if isinstance(message.value, bytes) else None
            device_key = key if key is not None else b""
            try:
                record = current_record(device_key)
            except Exception as error:  # an unreadable stored record: this message only
                log.exception("device_record_unreadable", key=device_key[:80])
                outcome = Outcome(
                    internal_error=True,
                    rejected=rejected(
                        Rejection(f"device record unreadable: {type(error).__name__}: {error}"),
                        topic=source.topic,
                        partition=source.partition,
                        offset=source.offset,
                        key=key,
                        value=value,
                    ),
                )
            else:
                outcome = worker.processor.handle(source, key, value, record)
            if outcome.device_id is not None and outcome.device_id.encode() != device_key:
                outcome = Outcome(
                    rejected=rejected(
                        Rejection("message key is not its device_id"),
                        topic=source.topic,
                        partition=source.partition,
                        offset=source.offset,
                        key=key,
                        value=value,
                    )
                )
            await route(outcome, event)
            worker.pending.events.append(event)
            worker.last_offsets[(message.topic, message.partition)] = message.offset
            if len(worker.pending.events) >= settings.sink_batch_size:
                await checkpoint()
            elif len(worker.pending.events) % YIELD_EVERY == 0:
                # A busy stream never suspends on its own: let the checkpoint's
                # InfluxDB and Kafka I/O progress between messages.
                await asyncio.sleep(0)

    @app.timer(interval=settings.sink_flush_seconds)
    async def periodic_checkpoint() -> None:
        if "device_events" in streams:
            await checkpoint()

    unacked: dict[str, list[Event]] = {}
    last_publish: dict[str, float] = {}
    training_streams: dict[str, Stream] = {}

    async def publish(group: str) -> None:
        trainer = worker.trainer(group)
        model = trainer.model()
        snapshot = sign_snapshot(
            settings.model_signing_key, group, model.version, model, model.examples_seen
        )
        delivery = await models_topic.send(
            key=group.encode(), value=snapshot.model_dump_json().encode()
        )
        await delivery
        last_publish[group] = time.monotonic()
        log.info("model_published", group=group, version=model.version)
        stream = training_streams["train"]
        for event in unacked.pop(group, []):
            await stream.ack(event)

    @app.agent(examples_topic)
    async def train(stream: Stream) -> None:
        manual = training_streams["train"] = stream.noack()
        await worker.models.caught_up.wait()
        async for event in manual.events():
            value = event.message.value if isinstance(event.message.value, bytes) else b""
            try:
                example = TrainingExample.model_validate_json(value)
            except ValidationError as error:
                reason = f"invalid TrainingExample: {describe_validation_error(error)}"
                envelope = rejected(
                    Rejection(reason),
                    topic=event.message.topic,
                    partition=event.message.partition,
                    offset=event.message.offset,
                    key=event.message.key if isinstance(event.message.key, bytes) else None,
                    value=value,
                )
                delivery = await dead_letter_topic.send(value=envelope.model_dump_json().encode())
                await delivery
                await manual.ack(event)
                continue
            trainer = worker.trainer(example.group)
            trainer.learn(example)
            unacked.setdefault(example.group, []).append(event)
            if trainer.due():
                await publish(example.group)

    @app.timer(interval=MODEL_PUBLISH_INTERVAL_S)
    async def publish_stragglers() -> None:
        now = time.monotonic()
        for group in list(unacked):
            if unacked[group] and now - last_publish.get(group, 0.0) >= MODEL_PUBLISH_INTERVAL_S:
                await publish(group)

    @app.task
    async def follow_models() -> None:
        await worker.models.follow(
            settings.kafka_bootstrap, settings.topic(topics.MODELS), options=kafka_options(settings)
        )

    health = HealthReporter(app, worker)

    @app.timer(interval=5.0)
    async def report_health() -> None:
        await health.report()

    return cast(faust.App, app)
