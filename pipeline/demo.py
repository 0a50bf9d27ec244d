"""The demo: one worker, the Backblaze sample replayed through Kafka, a summary at the end.

Everything here is orchestration of real pieces: the worker is a separate
``forewarn worker`` process, the data goes through Kafka, the prediction count comes
from a Flux query, the alerts from the ``alerts`` topic.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import UnknownTopicOrPartitionError
from pydantic import ValidationError

from pipeline import topics
from pipeline.datasets import Dataset, Event
from pipeline.errors import ForewarnError
from pipeline.influx import count_points, influx_client
from pipeline.replay import ReplayStats, replay
from pipeline.security import kafka_options
from pipeline.settings import Settings
from schemas import Alert, FailureEvent

log = structlog.get_logger(__name__)

DELETE_FROM = "1970-01-01T00:00:00Z"


@dataclass
class DemoSummary:
    """What a person needs to judge the run; also written as ``demo-summary.json``."""

    dataset: str
    readings: int = 0
    predictions_in_influxdb: int = 0
    alerts_raised: int = 0
    devices_alerted: int = 0
    failures: int = 0
    failures_detected: int = 0
    lead_days: list[float] = field(default_factory=list)
    median_lead_days: float | None = None
    false_alarm_devices: int = 0
    rejected: int = 0
    readings_per_second: float = 0.0
    wall_seconds: float = 0.0
    horizon_days: float = 14.0
    worker_log: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class WorkerProcess:
    """A ``forewarn worker`` child process with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-5:]
            raise ForewarnError(
                f"the worker exited with code {self.process.returncode}; "
                f"last log lines: {' | '.join(tail)}"
            )

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout_s)
        self._log.close()


def reset_deployment(settings: Settings) -> None:
    """Start from empty topics and no stored predictions (the demo owns the local servers)."""
    from pipeline.topics import TOPICS, admin_client, ensure_topics

    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        doomed = [settings.topic(spec.name) for spec in TOPICS]
        doomed = [name for name in doomed if name in existing]
        if doomed:
            admin.delete_topics(doomed)
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and set(admin.list_topics()) & set(doomed):
            time.sleep(0.2)  # topic deletion completes asynchronously on the broker
    finally:
        admin.close()
    created: list[str] = []
    give_up = time.monotonic() + 60
    while True:
        try:
            created = ensure_topics(settings)
            break
        except Exception:  # the broker may still be finishing the deletion
            if time.monotonic() > give_up:
                raise
            time.sleep(0.5)
    with influx_client(settings) as client:
        stop = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for measurement in ("prediction", "alert", "model_health", "pipeline_health"):
            client.delete_api().delete(
                DELETE_FROM,
                stop,
                f'_measurement="{measurement}"',
                bucket=settings.influx_bucket,
                org=settings.influx_org,
            )
    log.info("demo_reset", topics=len(created))


def _recording_failures(events: Iterator[Event], failures: dict[str, datetime]) -> Iterator[Event]:
    for event in events:
        if isinstance(event, FailureEvent):
            failures[event.device_id] = event.ts
        yield event


def read_alerts(settings: Settings, timeout_s: float = 30.0) -> list[Alert]:
    """Every alert on the topic (committed), oldest first."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_options(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    alerts: list[Alert] = []
    try:
        partitions = [
            TopicPartition(settings.topic(topics.ALERTS), p)
            for p in sorted(consumer.partitions_for_topic(settings.topic(topics.ALERTS)) or ())
        ]
        if not partitions:
            raise UnknownTopicOrPartitionError(settings.topic(topics.ALERTS))
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up and any(
            consumer.position(tp) < end[tp] for tp in partitions
        ):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        alerts.append(Alert.model_validate_json(record.value))
                    except ValidationError:
                        log.warning("unreadable_alert", offset=record.offset)
    finally:
        consumer.close()
    return sorted(alerts, key=lambda alert: (alert.ts, alert.device_id))


def count_messages(settings: Settings, topic: str) -> int:
    """Messages currently on ``topic`` (end minus beginning offsets)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, **kafka_options(settings)
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        end = consumer.end_offsets(partitions)
        begin = consumer.beginning_offsets(partitions)
    finally:
        consumer.close()
    return sum(end[tp] - begin[tp] for tp in partitions)


def score_alerts(
    summary: DemoSummary, alerts: list[Alert], failures: dict[str, datetime], horizon: timedelta
) -> None:
    """Detections, lead times and false alarms from the raised alerts."""
    raises: dict[str, list[datetime]] = {}
    seen: set[str] = set()
    for alert in alerts:
        if alert.action == "raise" and alert.alert_id not in seen:
            seen.add(alert.alert_id)
            raises.setdefault(alert.device_id, []).append(alert.ts)
    summary.alerts_raised = len(seen)
    summary.devices_alerted = len(raises)
    leads = []
    for device_id, failed_at in failures.items():
        in_window = [
            ts for ts in raises.get(device_id, []) if failed_at - horizon <= ts <= failed_at
        ]
        if in_window:
            leads.append((failed_at - min(in_window)).total_seconds() / 86400)
    summary.failures = len(failures)
    summary.failures_detected = len(leads)
    summary.lead_days = sorted(round(lead, 2) for lead in leads)
    summary.median_lead_days = statistics.median(leads) if leads else None
    summary.false_alarm_devices = sum(1 for device in raises if device not in failures)


def run_demo(
    settings: Settings,
    dataset: Dataset,
    *,
    horizon: timedelta,
    on_replay: Callable[[ReplayStats], None],
    on_stored: Callable[[int, int], None],
    wait_timeout_s: float = 900.0,
) -> DemoSummary:
    """Reset, start a worker, replay, wait for every prediction, and summarise."""
    started = time.monotonic()
    summary = DemoSummary(dataset=dataset.name, horizon_days=horizon.total_seconds() / 86400)
    reset_deployment(settings)
    worker_id = f"forewarn-demo-{datetime.now(UTC):%Y%m%d%H%M%S}"
    log_path = settings.state_dir / "demo" / f"{worker_id}.log"
    summary.worker_log = str(log_path)
    worker = WorkerProcess(
        {"FOREWARN_WORKER_ID": worker_id, "FOREWARN_LOG_FORMAT": "json"}, log_path
    )
    try:
        failures: dict[str, datetime] = {}
        replay_started = time.monotonic()
        stats = replay(
            settings,
            _recording_failures(iter(dataset.events()), failures),
            on_progress=on_replay,
        )
        summary.readings = stats.readings
        with influx_client(settings, timeout_ms=60_000) as client:
            give_up = time.monotonic() + wait_timeout_s
            stored = 0
            while True:
                worker.check_alive()
                stored = count_points(
                    client, settings, measurement="prediction", field="risk", start=DELETE_FROM
                )
                on_stored(stored, stats.readings)
                if stored >= stats.readings:
                    break
                if time.monotonic() > give_up:
                    raise ForewarnError(
                        f"only {stored:,} of {stats.readings:,} predictions stored after "
                        f"{wait_timeout_s:.0f} s; see {log_path}"
                    )
                time.sleep(3.0)  # polling InfluxDB (a full Flux count), bounded by the deadline
        processing_seconds = time.monotonic() - replay_started
        summary.predictions_in_influxdb = stored
        summary.readings_per_second = round(stats.readings / processing_seconds, 1)
        score_alerts(summary, read_alerts(settings), failures, horizon)
        summary.rejected = count_messages(settings, settings.topic(topics.DEAD_LETTER))
    finally:
        worker.stop()
    summary.wall_seconds = round(time.monotonic() - started, 1)
    return summary
