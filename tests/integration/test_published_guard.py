"""The published-alerts guard on the real broker: seeded from the topic's tail, then
following every partition of it, so a worker that takes over a killed worker's partitions
knows what that worker published (tests/integration/test_streaming.py kills one)."""

from __future__ import annotations

import asyncio

from kafka import KafkaProducer
from kafka.admin import NewTopic

from pipeline.settings import Settings
from pipeline.streaming.published import PublishedAlerts
from pipeline.topics import admin_client
from tests.unit.factories import make_alert

PARTITIONS = 3


def test_the_guard_follows_every_partition_of_the_alerts_topic(
    settings: Settings, unique: str, scratch_topics: list[str]
) -> None:
    topic = f"guard-{unique}"
    admin = admin_client(settings)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    scratch_topics.append(topic)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)

    def publish(alert_id: str, partition: int) -> None:
        value = make_alert(alert_id=alert_id).model_dump_json().encode()
        producer.send(topic, value=value, partition=partition).get(timeout=10)

    publish("before-start", 2)
    guard = PublishedAlerts.from_topic_tail(settings.kafka_bootstrap, topic)
    assert make_alert(alert_id="before-start") in guard

    async def follow_then_catch_up() -> list[bool]:
        task = asyncio.create_task(
            guard.follow(settings.kafka_bootstrap, topic, partitions=PARTITIONS)
        )
        try:
            for partition in range(PARTITIONS):  # another worker publishes on each one
                publish(f"later-{partition}", partition)
            await guard.catch_up(timeout_s=30)
            return [make_alert(alert_id=f"later-{p}") in guard for p in range(PARTITIONS)]
        finally:
            task.cancel()

    try:
        assert asyncio.run(follow_then_catch_up()) == [True] * PARTITIONS
    finally:
        producer.close()
