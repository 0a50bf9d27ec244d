"""The Faust application: wiring of the worker's parts to Kafka, the tables and InfluxDB.

Built by :func:`create_app` (no module-level app, no hard-coded broker). Data flows
one way (docs/streaming.md):

- ``device_events`` reads ``telemetry``, ``failures`` and ``feedback`` (co-partitioned
  by ``device_id``) and hands each message to the :class:`ScoringLoop` (one engine lane
  per input partition, the model barrier); :class:`Outputs` stages what comes out
  (points in the InfluxDB sink; alerts, training examples, markers and rejects sent to
  Kafka; device records) for the :class:`Checkpointer`, whose ``commit()`` makes it
  durable in order and only then acknowledges the input; :class:`Records` reads
  device and lane records, :class:`Positions` says where each partition resumes;
- ``train`` reads ``training-examples`` into the :class:`TrainingLoop`, which closes
  event-time epochs and publishes signed snapshots and ``EpochClosed`` records to
  ``models``;
- tasks follow ``models`` (:class:`ModelRegistry`, which wakes the lanes waiting for an
  epoch) and ``alerts`` (the published-alerts guard) on every worker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from pydantic import ValidationError

from pipeline import topics
from pipeline.catalogue_file import load_catalogue
from pipeline.engine import EngineConfig, Evaluator
from pipeline.security import faust_broker_credentials, kafka_options
from pipeline.settings import Settings
from pipeline.streaming import faust_adapter, tasks_dump
from pipeline.streaming.checkpoint import Checkpointer
from pipeline.streaming.counters import Counters
from pipeline.streaming.health import HealthReporter
from pipeline.streaming.influx_writer import InfluxWriter, is_permanent
from pipeline.streaming.intake import Rejection, describe_validation_error, rejected
from pipeline.streaming.models import ModelRegistry
from pipeline.streaming.outputs import Outputs
from pipeline.streaming.positions import Positions
from pipeline.streaming.processor import INPUT_TOPICS
from pipeline.streaming.published import PublishedAlerts
from pipeline.streaming.records import DEVICES, LANES, Records
from pipeline.streaming.rollup import Rollup
from pipeline.streaming.scoring import ScoringLoop, ScoringPorts
from pipeline.streaming.sink import InfluxSink
from pipeline.streaming.training import LANE_KEY_PREFIX, SnapshotPublisher, TrainingLoop
from schemas import LaneWatermark, TrainingExample

log = structlog.get_logger(__name__)

# Faust's own annotations are incomplete (untyped decorators, missing generics);
# inside this module its objects are handled as ``Any`` rather than fought with.
Event = Any
Stream = Any

YIELD_EVERY = 32
"""Messages the agent handles before it yields to the event loop."""

LANE_IDLE_S = 10.0
"""Wall time without new messages after which a caught-up partition's lane is idle."""


class Worker:
    """Everything one worker process holds besides Faust itself."""

    def __init__(
        self, settings: Settings, config: EngineConfig, published: PublishedAlerts
    ) -> None:
        self.settings = settings
        self.config = config
        self.catalogue = load_catalogue(settings.metric_catalogue)
        self.counters = Counters()
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
        self.models = ModelRegistry(settings.model_signing_key, settings.topic_partitions)
        self.records: Records
        self.scoring: ScoringLoop
        self.training: TrainingLoop
        self.checkpoint: Checkpointer

    def model_version(self, group: str) -> int:
        """Newest version of ``group``'s model this worker has received (0: none)."""
        model = self.models.latest(group)
        return model.version if model is not None else 0


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
        # 1 MB (Faust's and Kafka's default) let the lanes' watermark markers through
        # sooner, but a worker restarted after SIGKILL then stopped fetching after its
        # first fetch (tests/integration/test_reliability.py); kept at 8 MB until that
        # is understood (docs/benchmarks.md, "garbage collection, fetch size").
        "consumer_max_fetch_size": 8 * 1024 * 1024,
        "broker_commit_interval": 1.0,
        "stream_buffer_maxsize": 8192,
        "table_standby_replicas": 0,
        "consumer_auto_offset_reset": "earliest",
        "producer_linger": 0.02,
        "producer_max_batch_size": 1024 * 1024,
        "processing_guarantee": "at_least_once",
        # Messages wait unacknowledged on purpose (behind the model barrier, or until
        # their epoch is published); a rebalance must not wait for them: the checkpoint
        # is committed on revoke and the new owner re-reads what was not.
        "stream_wait_empty": False,
        "broker_credentials": faust_broker_credentials(settings),
    }


class _Ports:
    """The checkpoint's I/O on this worker: InfluxDB sink, dead-letter topic, tables, acks."""

    def __init__(self, app: Any, worker: Worker, dead_letter: Any, tables: dict[str, Any]) -> None:
        self._app = app
        self._worker = worker
        self._dead_letter = dead_letter
        self._tables = tables
        self.stream: Stream = None

    def points_buffered(self) -> bool:
        return bool(self._worker.sink.buffered)

    async def write_points(self) -> list[tuple[str, str]]:
        worker = self._worker
        worker.sink.add(worker.rollup.drain())
        await worker.sink.flush()
        return worker.sink.take_refused()

    async def dead_letter_points(self, refused: list[tuple[str, str]]) -> list[Awaitable[Any]]:
        deliveries = []
        for point, reason in refused:
            envelope = rejected(
                Rejection(f"InfluxDB refused the point: {reason}"),
                topic="influxdb",
                partition=None,
                offset=None,
                key=None,
                value=point.encode(),
            )
            self._worker.counters.rejected += 1
            deliveries.append(
                await self._dead_letter.send(value=envelope.model_dump_json().encode())
            )
        return deliveries

    async def write_states(self, table: str, states: list[tuple[bytes, bytes, Event]]) -> None:
        await faust_adapter.write_changelogged(self._app, self.stream, self._tables[table], states)

    async def ack(self, event: Event) -> None:
        await self.stream.ack(event)


def create_app(settings: Settings, config: EngineConfig, published: PublishedAlerts) -> faust.App:
    """Build the Faust app and its agents for one worker process."""
    app: Any = faust.App(settings.group_id, **_faust_settings(settings))
    faust_adapter.idempotent_producer(app)
    worker = Worker(settings, config, published)
    app.forewarn = worker  # reachable from tests and tasks
    counters = worker.counters
    signing_key = settings.model_signing_key

    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    input_names = [settings.topic(name) for name in INPUT_TOPICS]
    training_name = settings.topic(topics.TRAINING_EXAMPLES)
    inputs = app.topic(*input_names, **raw)
    alerts_topic = app.topic(settings.topic(topics.ALERTS), **raw)
    examples_topic = app.topic(training_name, **raw)
    dead_letter_topic = app.topic(settings.topic(topics.DEAD_LETTER), **raw)
    models_topic = app.topic(settings.topic(topics.MODELS), **raw)

    def table(name: str, changelog: str) -> Any:
        # Values are pickles sealed with the signing key: the changelog is a Kafka topic,
        # so its bytes are checked (HMAC) before they are unpickled.
        return app.Table(
            name,
            default=None,
            key_type=bytes,
            value_type=bytes,
            partitions=settings.topic_partitions,
            changelog_topic=app.topic(
                settings.topic(changelog),
                key_serializer="raw",
                value_serializer="raw",
                partitions=settings.topic_partitions,
                compacting=True,
            ),
        )

    tables = {
        DEVICES: table(DEVICES, topics.DEVICE_STATE_CHANGELOG),
        LANES: table(LANES, topics.LANE_STATE_CHANGELOG),
    }
    ports = _Ports(app, worker, dead_letter_topic, tables)

    # The records read through the checkpoint and the checkpoint calls back into them:
    # the lambdas bind ``records`` and ``scoring`` once they exist.
    checkpoint = worker.checkpoint = Checkpointer(
        ports,
        pause_after_points_s=settings.fault_pause_after_points_s,
        on_state_written=lambda table, key, record: records.written(table, key, record),  # noqa: PLW0108
        before_commit=lambda: records.stage_lanes(scoring, input_names),
    )
    records = worker.records = Records(tables, checkpoint, worker.models, signing_key)
    positions = Positions(
        app, worker, records, input_names=input_names, training_name=training_name
    )
    rewinds = positions.rewinds

    # -- scoring ------------------------------------------------------------------------

    outputs = Outputs(
        checkpoint,
        alerts=alerts_topic,
        examples=examples_topic,
        dead_letter=dead_letter_topic,
        sink=worker.sink,
        rollup=worker.rollup,
        evaluator=worker.evaluator,
        published=worker.published,
        counters=counters,
        signing_key=signing_key,
        partitions=settings.topic_partitions,
        sink_readings=settings.sink_readings,
    )

    async def resume_fetch(partition: int, offset: int) -> None:
        # Faust drops the records of a paused partition it had already fetched (aiokafka
        # counts them consumed), and a partition resumed that way was never fetched
        # again (single-reading input stalled at 2 x 20,000 messages): resume, then seek
        # to the message after the newest one parked, which restarts its fetch there.
        faust_adapter.resume(app, input_names[:1], partition)
        await faust_adapter.seek(app, input_names[0], partition, offset)
        log.info("lane_resumed", partition=partition, offset=offset)

    async def before_new_lane() -> None:
        # A lane (restored) installs the exact versions it had: read them first; and its
        # previous owner's alerts, so that what it re-reads is not published twice.
        await worker.models.catch_up()
        await worker.published.catch_up()

    scoring = worker.scoring = ScoringLoop(
        config,
        worker.models,
        counters,
        ScoringPorts(
            record_of=records.device,
            route=outputs.route,
            done=outputs.done,
            send_marker=outputs.send_marker,
            load_lane=records.load_lane,
            # Only readings pause: a lane may be waiting for its failures.
            pause=lambda p: faust_adapter.pause(app, input_names[:1], p),
            resume=resume_fetch,
            labels_read=positions.labels_read,
            before_new_lane=before_new_lane,
        ),
        topic_prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        catalogue=worker.catalogue,
    )

    async def commit() -> None:
        stats = await checkpoint.commit()
        if stats is not None:
            log.debug("checkpoint", **asdict(stats))

    @app.on_partitions_revoked.connect
    async def on_revoked(_: Any, revoked: Any = (), *__: Any, **___: Any) -> None:
        # Another worker may own them next: their state is read from the tables again
        # when they come back, and what waited (unacknowledged) is re-read by the new owner.
        await positions.revoked(revoked, commit if ports.stream is not None else None)

    @app.on_partitions_assigned.connect
    async def on_assigned(_: Any, assigned: Any = (), *__: Any, **___: Any) -> None:
        positions.assigned(assigned)

    @app.agent(inputs)
    async def device_events(stream: Stream) -> None:
        manual = ports.stream = stream.noack()
        await worker.models.caught_up.wait()
        handled = 0
        async for event in manual.events():
            message = event.message
            if not await rewinds.admit(message.topic, message.partition, message.offset):
                continue
            await scoring.offer(event)
            handled += 1
            if checkpoint.size >= settings.sink_batch_size:
                await commit()
            elif handled % YIELD_EVERY == 0:
                # A busy stream never suspends on its own: let the checkpoint's
                # InfluxDB and Kafka I/O progress between messages.
                await asyncio.sleep(0)

    @app.timer(interval=settings.sink_flush_seconds)
    async def periodic_checkpoint() -> None:
        if ports.stream is not None:
            await commit()

    @app.task
    async def resume_lanes() -> None:
        while True:
            await worker.models.changed.wait()
            worker.models.changed.clear()
            await scoring.drain()

    @app.timer(interval=LANE_IDLE_S / 5)
    async def idle_lanes() -> None:
        if ports.stream is None:
            return

        try:
            scoring.report_waiting()
        except Exception:  # a report must never stop the worker (Faust crashes on it)
            log.exception("lane_report_failed")
        await scoring.remind(LANE_IDLE_S)
        # A safety net for wake-ups: a lane can wait on two things (an epoch, its
        # failures being read); draining again only retries the queues' heads in order.
        await scoring.drain()
        await scoring.mark_idle(
            faust_adapter.assigned(app, input_names[0]),
            positions.telemetry_drained,
            LANE_IDLE_S,
            settled=not app.rebalancing and worker.models.caught_up.is_set(),
        )

    # -- training -----------------------------------------------------------------------

    training_streams: dict[str, Stream] = {}

    async def ack_training(event: Event) -> None:
        await training_streams["train"].ack(event)

    worker.training = TrainingLoop(
        config,
        lanes=settings.topic_partitions,
        training_partitions=settings.topic_partitions,
        registry=worker.models,
        counters=counters,
        publish=SnapshotPublisher(models_topic, signing_key),
        ack=ack_training,
    )

    async def dead_letter_training(event: Event, value: bytes, reason: str) -> None:
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
        await ack_training(event)

    @app.agent(examples_topic)
    async def train(stream: Stream) -> None:
        manual = training_streams["train"] = stream.noack()
        await worker.models.caught_up.wait()
        async for event in manual.events():
            message = event.message
            if not await rewinds.admit(message.topic, message.partition, message.offset):
                continue
            if message.partition not in worker.training.trainers:
                # Resumed from what the previous owner published, up to this moment.
                await worker.models.catch_up()
            value = message.value if isinstance(message.value, bytes) else b""
            key = message.key if isinstance(message.key, bytes) else b""
            try:
                if key.startswith(LANE_KEY_PREFIX):
                    marker = LaneWatermark.model_validate_json(value)
                    await worker.training.on_marker(message.partition, event, marker)
                else:
                    example = TrainingExample.model_validate_json(value)
                    await worker.training.on_example(message.partition, event, example)
            except ValidationError as error:
                kind = "LaneWatermark" if key.startswith(LANE_KEY_PREFIX) else "TrainingExample"
                reason = f"invalid {kind}: {describe_validation_error(error)}"
                await dead_letter_training(event, value, reason)

    @app.task
    async def follow_models() -> None:
        await worker.models.follow(
            settings.kafka_bootstrap, settings.topic(topics.MODELS), options=kafka_options(settings)
        )

    @app.task
    async def follow_alerts() -> None:
        await worker.published.follow(
            settings.kafka_bootstrap,
            settings.topic(topics.ALERTS),
            partitions=topics.TOPICS_BY_NAME[topics.ALERTS].partition_count(settings),
            options=kafka_options(settings),
        )

    health = HealthReporter(app, worker)

    @app.task
    async def debug_signal() -> None:
        tasks_dump.install(asyncio.get_running_loop())

    @app.timer(interval=5.0)
    async def report_health() -> None:
        await health.report()

    return cast(faust.App, app)
