"""The foundation against the real servers: Kafka, InfluxDB, topics, `forewarn doctor`."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from pipeline.influx import count_points, flux_string, influx_client
from pipeline.settings import Settings
from pipeline.topics import TOPICS, TopicSpec, admin_client, ensure_topics


def test_kafka_round_trip_on_a_fresh_topic(
    settings: Settings, unique: str, scratch_topics: list[str]
) -> None:
    spec = TopicSpec(f"test-roundtrip-{unique}", "delete", 3_600_000, 1024 * 1024, partitions=3)
    assert ensure_topics(settings, [spec]) == [spec.name]
    scratch_topics.append(spec.name)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    sent = {f"device-{i}".encode(): f"reading-{i}".encode() for i in range(50)}
    for key, value in sent.items():
        producer.send(spec.name, key=key, value=value)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        spec.name,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"test-{unique}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=15_000,
    )
    received: dict[bytes, bytes] = {}
    for record in consumer:
        received[record.key] = record.value
        if len(received) == len(sent):
            break
    consumer.close()
    assert received == sent


def test_influx_write_then_flux_read_back(settings: Settings, unique: str) -> None:
    ts = datetime(2020, 1, 1, tzinfo=UTC)
    with influx_client(settings) as client:
        points = [
            Point("test_roundtrip")
            .tag("run", unique)
            .tag("i", str(i))
            .field("v", float(i))
            .time(ts)
            for i in range(10)
        ]
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=settings.influx_bucket, org=settings.influx_org, record=points
        )
        query = (
            f"from(bucket: {flux_string(settings.influx_bucket)})"
            " |> range(start: 2019-12-31T00:00:00Z)"
            ' |> filter(fn: (r) => r._measurement == "test_roundtrip")'
            f" |> filter(fn: (r) => r.run == {flux_string(unique)})"
        )
        values = sorted(
            record.get_value()
            for table in client.query_api().query(query, org=settings.influx_org)
            for record in table.records
        )
        assert values == [float(i) for i in range(10)]
        # Same tags and timestamp: a rewrite overwrites, never doubles.
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=settings.influx_bucket, org=settings.influx_org, record=points
        )
        count = count_points(
            client,
            settings,
            measurement="test_roundtrip",
            field="v",
            start="2019-12-31T00:00:00Z",
            tag_filter={"run": unique},
        )
        assert count == 10


def test_topic_creation_twice_changes_nothing(settings: Settings) -> None:
    ensure_topics(settings)
    admin = admin_client(settings)
    try:
        before = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic(s.name)) for s in TOPICS]
        )
        assert ensure_topics(settings) == []
        after = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topic(s.name)) for s in TOPICS]
        )
        names = [settings.topic(spec.name) for spec in TOPICS]
        partitions = {
            topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics(names)
        }
    finally:
        admin.close()
    assert str(before) == str(after)
    for spec in TOPICS:
        assert partitions[settings.topic(spec.name)] == spec.partition_count(settings)


def _doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "doctor"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_doctor_passes_against_the_local_servers(settings: Settings) -> None:
    ensure_topics(settings)
    result = _doctor({})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    assert sum(line.startswith("ok") for line in result.stdout.splitlines()) == 3


def test_doctor_fails_clearly_when_influxdb_is_unreachable(settings: Settings) -> None:
    result = _doctor({"FOREWARN_INFLUX_URL": "http://127.0.0.1:9"})
    assert result.returncode == 1
    assert "FAIL influxdb" in result.stdout
    assert "cannot connect to 127.0.0.1:9" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert settings.influx_token.get_secret_value() not in result.stdout + result.stderr


def test_doctor_fails_clearly_when_kafka_is_unreachable() -> None:
    result = _doctor({"FOREWARN_KAFKA_BOOTSTRAP": "127.0.0.1:9"})
    assert result.returncode == 1
    assert "FAIL kafka" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_alerts_of_a_deployment_that_does_not_exist_is_one_line(
    settings: Settings, unique: str
) -> None:
    """A mistyped ``FOREWARN_TOPIC_PREFIX`` must not look like a deployment with no alerts."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "alerts", "--from-beginning", "--no-follow"],
        env={**os.environ, "FOREWARN_TOPIC_PREFIX": f"no-such-{unique}."},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"'no-such-{unique}.alerts' does not exist" in lines[0]
    assert "FOREWARN_TOPIC_PREFIX" in lines[0]
    assert result.stdout == ""
