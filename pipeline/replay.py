"""Replay a dataset into Kafka, in time order, as devices and operators would send it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog
from kafka import KafkaProducer

from pipeline import topics
from pipeline.datasets import Event
from pipeline.errors import ConfigError
from pipeline.security import kafka_options
from pipeline.settings import Settings
from schemas import FailureEvent, MaintenanceEvent

log = structlog.get_logger(__name__)


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
    seconds: float = 0.0
    maintenance_skipped: int = 0
    """Maintenance events of the dataset: no topic carries them yet, so not sent."""

    @property
    def messages(self) -> int:
        return self.readings + self.failures


def producer_for(settings: Settings) -> KafkaProducer:
    """A producer tuned for throughput; ``acks=all`` so nothing is lost on the way."""
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_options(settings),
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        retries=10,
        client_id="forewarn-replay",
    )


def replay(
    settings: Settings,
    events: Iterable[Event],
    *,
    pace: Pace = Pace(),
    limit: int | None = None,
    on_progress: Callable[[ReplayStats], None] | None = None,
    producer: KafkaProducer | None = None,
) -> ReplayStats:
    """Send ``events`` to ``telemetry`` and ``failures``, keyed by ``device_id``."""
    own_producer = producer is None
    kafka = producer if producer is not None else producer_for(settings)
    stats = ReplayStats()
    started = time.monotonic()
    first_ts: float | None = None
    try:
        for event in events:
            if limit is not None and stats.messages >= limit:
                break
            if isinstance(event, MaintenanceEvent):
                stats.maintenance_skipped += 1
                continue
            _wait_for_slot(pace, stats.messages, started, event, first_ts)
            if first_ts is None:
                first_ts = event.ts.timestamp()
            topic = topics.FAILURES if isinstance(event, FailureEvent) else topics.TELEMETRY
            kafka.send(
                settings.topic(topic),
                key=event.device_id.encode(),
                value=event.model_dump_json().encode(),
            )
            if isinstance(event, FailureEvent):
                stats.failures += 1
            else:
                stats.readings += 1
            if on_progress is not None and stats.messages % 5000 == 0:
                on_progress(stats)
        kafka.flush()
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


def _wait_for_slot(
    pace: Pace, sent: int, started: float, event: Event, first_ts: float | None
) -> None:
    if pace.rate is not None:
        due = started + sent / pace.rate
    elif pace.speedup is not None and first_ts is not None:
        due = started + (event.ts.timestamp() - first_ts) / pace.speedup
    else:
        return
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # pacing a producer, not waiting for a condition
