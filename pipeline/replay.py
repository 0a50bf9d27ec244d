"""Replay a dataset into Kafka, in time order, as devices and operators would send it.

Readings go out in :class:`~schemas.TelemetryBatch` messages, one batch per partition
at a time (:class:`pipeline.producer.TelemetryProducer`), or one reading per message
with ``batch=False`` (``forewarn replay --single``). Failures go one per message, keyed
by ``device_id``, each after its device's partition's pending readings were sent and
acknowledged, so a failure never overtakes the readings of its partition sent before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from pipeline import topics
from pipeline.datasets import Event
from pipeline.errors import ConfigError
from pipeline.producer import DEFAULT_MAX_READINGS, TelemetryProducer, producer_for
from pipeline.settings import Settings
from schemas import FailureEvent, MaintenanceEvent
from schemas.telemetry import MAX_BATCH_READINGS

log = structlog.get_logger(__name__)

BATCH_BY_DEFAULT = True
"""Whether ``replay`` (and ``forewarn replay``) sends readings in batches by default."""


@dataclass(frozen=True)
class Pace:
    """How fast to replay: messages per second, a speed-up of the data's own clock, or flat out."""

    rate: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if self.rate is not None and self.speedup is not None:
            raise ConfigError("give either --rate or --speedup, not both")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError(f"--rate must be positive, got {self.rate}")
        if self.speedup is not None and self.speedup <= 0:
            raise ConfigError(f"--speedup must be positive, got {self.speedup}")


@dataclass
class ReplayStats:
    """What a replay sent."""

    readings: int = 0
    failures: int = 0
    batches: int = 0
    """Telemetry messages that carried the readings (as many as readings with ``--single``)."""
    seconds: float = 0.0
    maintenance_skipped: int = 0
    """Maintenance events of the dataset: no topic carries them yet, so not sent."""

    @property
    def messages(self) -> int:
        """Events sent: readings plus failures (whatever messages carried them)."""
        return self.readings + self.failures


def replay(
    settings: Settings,
    events: Iterable[Event],
    *,
    pace: Pace = Pace(),
    limit: int | None = None,
    on_progress: Callable[[ReplayStats], None] | None = None,
    producer: KafkaProducer | None = None,
    batch: bool = BATCH_BY_DEFAULT,
    batch_readings: int = DEFAULT_MAX_READINGS,
) -> ReplayStats:
    """Send ``events`` to ``telemetry`` (in batches of up to ``batch_readings`` readings
    per partition, or one reading per message if ``batch`` is false) and ``failures``
    (keyed by ``device_id``); ``limit`` counts readings and failures.

    Raises ``ConfigError`` for a bad ``batch_readings`` and
    ``pipeline.producer.ProduceError`` if Kafka refuses a message."""
    if batch:
        check_batch_readings(batch_readings)
    own_producer = producer is None
    kafka = (
        producer if producer is not None else producer_for(settings, client_id="forewarn-replay")
    )
    stats = ReplayStats()
    started = time.monotonic()
    first_ts: float | None = None
    try:
        telemetry = (
            TelemetryProducer(settings, max_readings=batch_readings, producer=kafka)
            if batch
            else None
        )
        for event in events:
            if limit is not None and stats.messages >= limit:
                break
            if isinstance(event, MaintenanceEvent):
                stats.maintenance_skipped += 1
                continue
            delay = _delay(pace, stats.messages, started, event, first_ts)
            if delay > 0:
                if telemetry is not None and delay >= telemetry.linger_s:
                    telemetry.send_pending()  # nothing joins them during the pause
                time.sleep(delay)  # pacing a producer, not waiting for a condition
            if first_ts is None:
                first_ts = event.ts.timestamp()
            if isinstance(event, FailureEvent):
                if telemetry is not None:
                    telemetry.flush_partition(telemetry.partition_of(event.device_id))
                # Acknowledged before any later reading is sent: a worker processes a
                # reading only once it has read every failure written before it.
                _send_keyed(kafka, settings.topic(topics.FAILURES), event).get(timeout=60)
                stats.failures += 1
            elif telemetry is not None:
                telemetry.send(event)
                stats.readings += 1
            else:
                _send_keyed(kafka, settings.topic(topics.TELEMETRY), event)
                stats.readings += 1
            if on_progress is not None and stats.messages % 5000 == 0:
                on_progress(stats)
        if telemetry is not None:
            telemetry.flush()
        kafka.flush()
        stats.batches = telemetry.batches if telemetry is not None else stats.readings
        if stats.maintenance_skipped:
            log.warning("replay.maintenance_not_sent", events=stats.maintenance_skipped)
    finally:
        if own_producer:
            kafka.close()
    stats.seconds = time.monotonic() - started
    if on_progress is not None:
        on_progress(stats)
    log.info("replay_done", readings=stats.readings, failures=stats.failures, s=stats.seconds)
    return stats


def check_batch_readings(readings: int) -> None:
    """Raise ``ConfigError`` unless a batch of ``readings`` readings is one the worker takes."""
    if not 1 <= readings <= MAX_BATCH_READINGS:
        raise ConfigError(f"--batch-readings must be 1 to {MAX_BATCH_READINGS}, got {readings}")


def _send_keyed(kafka: KafkaProducer, topic: str, event: Event) -> FutureRecordMetadata:
    return kafka.send(topic, key=event.device_id.encode(), value=event.model_dump_json().encode())


def _delay(pace: Pace, sent: int, started: float, event: Event, first_ts: float | None) -> float:
    """Seconds to wait before sending ``event`` (0 or less: send now)."""
    if pace.rate is not None:
        due = started + sent / pace.rate
    elif pace.speedup is not None and first_ts is not None:
        due = started + (event.ts.timestamp() - first_ts) / pace.speedup
    else:
        return 0.0
    return due - time.monotonic()
