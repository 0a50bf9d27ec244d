"""The producer helper against the real Kafka: every reading once, on its device's partition."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from pipeline import topics
from pipeline.partitioner import partition_for
from pipeline.producer import TelemetryProducer
from pipeline.settings import Settings
from pipeline.streaming.intake import decode_many
from pipeline.topics import ensure_topics
from schemas import Telemetry

PARTITIONS = 3


def read_records(settings: Settings, topic: str, timeout_s: float = 30.0) -> list[ConsumerRecord]:
    """Every message on ``topic`` (a full Kafka name), with its partition, in log order."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    out: list[ConsumerRecord] = []
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        give_up = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > give_up:
                raise TimeoutError(f"could not read {topic} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
    finally:
        consumer.close()
    return out


def received_readings(settings: Settings, partitions: int) -> list[tuple[int, Telemetry]]:
    """(partition, reading) of every reading on ``telemetry``, decoded as the worker does;
    fails on any rejection (a bad reading or one on the wrong partition)."""
    out = []
    for record in read_records(settings, settings.topic(topics.TELEMETRY)):
        decoded = decode_many(
            topics.TELEMETRY,
            record.key,
            record.value,
            partition=record.partition,
            partitions=partitions,
        )
        for index, result in decoded:
            assert index is not None, "a single-reading message where a batch was expected"
            assert isinstance(result, Telemetry), result
            out.append((record.partition, result))
    return out


def test_every_reading_arrives_once_in_a_batch_on_its_devices_partition(
    settings: Settings, unique: str, scratch_topics: list[str]
) -> None:
    deployment = settings.model_copy(
        update={"topic_prefix": f"t{unique}-", "topic_partitions": PARTITIONS}
    )
    scratch_topics.extend(ensure_topics(deployment))
    start = datetime(2013, 4, 10, tzinfo=UTC)
    sent = [
        Telemetry(
            device_id=f"disk-{unique}-{d}",
            ts=start + timedelta(hours=n),
            device_type="ST4000DM000",
            metrics={"smart_5_raw": float(n), "smart_197_raw": float(d)},
        )
        for n in range(12)
        for d in range(40)
    ]
    # The settings claim 5 partitions; the producer must place by the topic's real 3.
    claimed = deployment.model_copy(update={"topic_partitions": 5})
    with TelemetryProducer(claimed, max_readings=7) as producer:
        assert producer.partitions == PARTITIONS
        for reading in sent:
            producer.send(reading)
    assert producer.readings == len(sent)

    records = read_records(deployment, deployment.topic(topics.TELEMETRY))
    assert len(records) == producer.batches
    assert -(-len(sent) // 7) <= len(records) < len(sent)
    assert all(record.key is None for record in records)
    received = received_readings(deployment, PARTITIONS)
    assert sorted(r.model_dump_json() for _, r in received) == sorted(
        r.model_dump_json() for r in sent
    )  # every reading exactly once
    assert all(partition_for(r.device_id, PARTITIONS) == p for p, r in received)
    by_device: dict[str, list[datetime]] = {}
    for _, reading in received:
        by_device.setdefault(reading.device_id, []).append(reading.ts)
    assert all(stamps == sorted(stamps) for stamps in by_device.values())  # per-device order
