"""An isolated deployment on the real servers: its own topic prefix, bucket and worker."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from influxdb_client.client.influxdb_client import InfluxDBClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.datasets import Event
from pipeline.demo import WorkerProcess
from pipeline.influx import count_points, flux_string, influx_client
from pipeline.replay import Pace, replay
from pipeline.settings import Settings
from pipeline.topics import ensure_topics

TEST_ENGINE_OVERRIDES = {"alert_budget": 5.0}
"""The test slice keeps every failed drive but 1 in 40 healthy ones (17 % failed instead of
0.5 %); a budget scaled to that mix keeps alerts frequent enough to test."""


def wait_until(condition: Any, *, timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    """Poll until ``condition()`` is truthy and return it; ``TimeoutError`` at the deadline."""
    give_up = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > give_up:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)  # polling a real server, bounded by the deadline


@dataclass
class Deployment:
    """A prefix-isolated Forewarn deployment for one test."""

    base: Settings
    state_dir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    workers: list[WorkerProcess] = field(default_factory=list)
    _bucket_id: str | None = None

    @property
    def settings(self) -> Settings:
        return self.base.model_copy(
            update={
                "topic_prefix": f"t{self.run_id}-",
                "influx_bucket": f"test-{self.run_id}",
                "worker_id": f"test-{self.run_id}",
                "state_dir": self.state_dir,
                "topic_partitions": 2,
                "engine_overrides": TEST_ENGINE_OVERRIDES,
            }
        )

    def env(self) -> dict[str, str]:
        settings = self.settings
        return {
            "FOREWARN_LOCAL_DEVELOPMENT": "1",
            "FOREWARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "FOREWARN_INFLUX_URL": settings.influx_url,
            "FOREWARN_TOPIC_PREFIX": settings.topic_prefix,
            "FOREWARN_INFLUX_BUCKET": settings.influx_bucket,
            "FOREWARN_WORKER_ID": settings.worker_id,
            "FOREWARN_APP_ID": settings.worker_id,
            "FOREWARN_STATE_DIR": str(settings.state_dir),
            "FOREWARN_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "FOREWARN_ENGINE_OVERRIDES": json.dumps(settings.engine_overrides),
            "FOREWARN_SINK_FLUSH_SECONDS": "0.2",
            "FOREWARN_LOG_FORMAT": "json",
            "FOREWARN_LOG_LEVEL": os.environ.get("FOREWARN_TEST_LOG_LEVEL", "info"),
        }

    def __enter__(self) -> Deployment:
        ensure_topics(self.settings)
        with influx_client(self.settings) as client:
            bucket = client.buckets_api().create_bucket(
                bucket_name=self.settings.influx_bucket, org=self.base.influx_org
            )
            self._bucket_id = bucket.id
        return self

    def __exit__(self, *_: object) -> None:
        for worker in self.workers:
            worker.stop(timeout_s=20)
        from pipeline.topics import TOPICS, admin_client

        admin = admin_client(self.settings)
        try:
            existing = set(admin.list_topics())
            names = [self.settings.topic(spec.name) for spec in TOPICS]
            admin.delete_topics([name for name in names if name in existing])
        finally:
            admin.close()
        if self._bucket_id is not None:
            with influx_client(self.settings) as client:
                client.buckets_api().delete_bucket(self._bucket_id)

    # -- worker ---------------------------------------------------------------

    def start_worker(self, **extra_env: str) -> WorkerProcess:
        n = len(self.workers)
        log_path = self.state_dir / f"worker-{n}.log"
        own = {"FOREWARN_WORKER_ID": f"{self.settings.worker_id}-{n}"}  # same group, own state
        worker = WorkerProcess({**self.env(), **own, **extra_env}, log_path)
        self.workers.append(worker)
        return worker

    @staticmethod
    def kill(worker: WorkerProcess) -> None:
        """SIGKILL the worker's whole process group: no chance to flush or commit."""
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)

    def log_events(self) -> list[dict[str, Any]]:
        """Every JSON log line of every worker of this deployment."""
        events = []
        for worker in self.workers:
            for line in worker.log_path.read_text(errors="replace").splitlines():
                raw = line[line.find("{") :]  # Faust may put terminal escapes first
                if raw.startswith("{"):
                    try:
                        events.append(json.loads(raw))
                    except json.JSONDecodeError:
                        continue
        return events

    # -- Kafka ----------------------------------------------------------------

    def replay(self, events: Iterable[Event], *, seconds_per_day: float | None = None) -> None:
        """Produce events as fast as possible, or with one day of data per ``seconds_per_day``."""
        pace = Pace(speedup=86_400 / seconds_per_day) if seconds_per_day else Pace()
        replay(self.settings, events, pace=pace)

    def produce(self, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.base.kafka_bootstrap,
            acks="all",
            max_request_size=4 * 1024 * 1024,
        )
        for key, value in messages:
            producer.send(self.settings.topic(topic), key=key, value=value)
        producer.flush()
        producer.close()

    def read_topic(self, topic: str, timeout_s: float = 20.0) -> list[tuple[bytes | None, bytes]]:
        """Every committed message on a topic of this deployment."""
        name = self.settings.topic(topic)
        consumer = KafkaConsumer(
            bootstrap_servers=self.base.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        out: list[tuple[bytes | None, bytes]] = []
        try:
            partitions = [
                TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())
            ]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            give_up = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in partitions):
                if time.monotonic() > give_up:
                    raise TimeoutError(f"could not read {name} to its end")
                for records in consumer.poll(timeout_ms=500).values():
                    out.extend((record.key, record.value) for record in records)
        finally:
            consumer.close()
        return out

    # -- InfluxDB -------------------------------------------------------------

    def client(self) -> InfluxDBClient:
        return influx_client(self.settings, timeout_ms=60_000)

    def count_predictions(self) -> int:
        with self.client() as client:
            return count_points(
                client, self.settings, measurement="prediction", field="risk", start="0"
            )

    def wait_for_predictions(self, expected: int, timeout_s: float = 180.0) -> None:
        def enough() -> bool:
            for worker in self.workers:
                if worker.process.poll() is None:
                    break
            else:
                raise AssertionError("no worker is running")
            return self.count_predictions() >= expected

        wait_until(enough, timeout_s=timeout_s, what=f"{expected} predictions in InfluxDB")

    def prediction_field(self, field_name: str) -> dict[tuple[str, int], float]:
        """``(device_id, ns timestamp) -> value`` of one prediction field."""
        query = (
            f"from(bucket: {flux_string(self.settings.influx_bucket)}) |> range(start: 0)"
            ' |> filter(fn: (r) => r._measurement == "prediction")'
            f" |> filter(fn: (r) => r._field == {flux_string(field_name)})"
        )
        out: dict[tuple[str, int], float] = {}
        with self.client() as client:
            for table in client.query_api().query(query, org=self.settings.influx_org):
                for record in table.records:
                    ts = record.get_time()
                    ns = int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000
                    out[(record.values["device_id"], ns)] = float(record.get_value())
        return out
