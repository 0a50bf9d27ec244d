"""End-to-end checks of a deployment: can we talk to Kafka and InfluxDB for real?"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline.influx import flux_string, influx_client
from pipeline.security import kafka_options
from pipeline.settings import Settings
from pipeline.topics import TOPICS, TopicSpec, admin_client, ensure_topics

SCRATCH_TOPIC = TopicSpec("forewarn-doctor", "delete", 60 * 60 * 1000, 1024 * 1024, partitions=1)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check, phrased for a person."""

    name: str
    ok: bool
    detail: str


def _timed(name: str, check: Callable[[], str]) -> CheckResult:
    started = time.monotonic()
    try:
        detail = check()
    except Exception as error:  # a failed check is a result to report, not a crash
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return CheckResult(name, False, f"{type(error).__name__}: {message}")
    return CheckResult(name, True, f"{detail} ({(time.monotonic() - started) * 1000:.0f} ms)")


def _reachable(host: str, port: int, timeout_s: float = 3.0) -> None:
    """Fail fast, with the address in the message, when nothing listens there."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ConnectionError(
            f"cannot connect to {host}:{port} ({error.strerror or error})"
        ) from None


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(address if "//" in address else f"//{address}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def check_kafka_round_trip(settings: Settings, deadline_s: float = 15.0) -> str:
    """Produce a unique message to the scratch topic and consume it back."""
    _reachable(*_host_port(settings.kafka_bootstrap.split(",")[0], 9092))
    ensure_topics(settings, [SCRATCH_TOPIC])
    scratch = settings.topic(SCRATCH_TOPIC.name)
    token = uuid.uuid4().hex.encode()
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        request_timeout_ms=10_000,
        **kafka_options(settings),
    )
    try:
        metadata = producer.send(scratch, value=token).get(timeout=deadline_s)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        **kafka_options(settings),
    )
    try:
        partition = TopicPartition(scratch, metadata.partition)
        consumer.assign([partition])
        consumer.seek(partition, metadata.offset)
        give_up = time.monotonic() + deadline_s
        while time.monotonic() < give_up:
            for records in consumer.poll(timeout_ms=500).values():
                if any(record.value == token for record in records):
                    return f"produced and consumed a message on {scratch!r}"
    finally:
        consumer.close()
    raise TimeoutError(f"message not consumed back within {deadline_s:.0f} s")


def check_topics(settings: Settings) -> str:
    """Every Forewarn topic exists."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    missing = [settings.topic(s.name) for s in TOPICS if settings.topic(s.name) not in existing]
    if missing:
        raise LookupError(f"missing topics {missing}; run `forewarn topics create`")
    return f"all {len(TOPICS)} topics exist"


def check_influx_round_trip(settings: Settings, deadline_s: float = 15.0) -> str:
    """Write a uniquely tagged point and read it back with a Flux query."""
    _reachable(*_host_port(settings.influx_url, 8086))
    token = uuid.uuid4().hex
    with influx_client(settings) as client:
        if not client.ping():
            raise ConnectionError(f"no answer from {settings.influx_url}")
        point = (
            Point("doctor")
            .tag("check", token)
            .field("value", 1.0)
            .time(datetime.now(UTC), WritePrecision.MS)
        )
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=settings.influx_bucket, org=settings.influx_org, record=point
        )
        query = (
            f"from(bucket: {flux_string(settings.influx_bucket)}) |> range(start: -1h)"
            f' |> filter(fn: (r) => r._measurement == "doctor" and r.check == {flux_string(token)})'
        )
        give_up = time.monotonic() + deadline_s
        while time.monotonic() < give_up:
            tables = client.query_api().query(query, org=settings.influx_org)
            if any(record.get_value() == 1.0 for table in tables for record in table.records):
                return f"wrote a point to bucket {settings.influx_bucket!r} and read it back"
            time.sleep(0.2)  # polling a remote condition with a deadline
    raise TimeoutError(f"point not readable within {deadline_s:.0f} s")


def run_checks(settings: Settings) -> Iterator[CheckResult]:
    """Run every check in order, yielding each result as soon as it is known."""
    kafka = _timed("kafka", lambda: check_kafka_round_trip(settings))
    yield kafka
    if kafka.ok:
        yield _timed("topics", lambda: check_topics(settings))
    else:
        yield CheckResult("topics", False, "skipped: Kafka is not reachable")
    yield _timed("influxdb", lambda: check_influx_round_trip(settings))
