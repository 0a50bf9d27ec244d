"""Every Kafka topic Forewarn uses, defined once, and their idempotent creation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import structlog
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.security import kafka_options
from pipeline.settings import Settings

log = structlog.get_logger(__name__)

DAY_MS = 24 * 60 * 60 * 1000
MIB = 1024 * 1024

TELEMETRY = "telemetry"
FAILURES = "failures"
FEEDBACK = "feedback"
ALERTS = "alerts"
DEAD_LETTER = "dead-letter"
TRAINING_EXAMPLES = "training-examples"
MODELS = "models"
DEVICE_STATE_CHANGELOG = "forewarn-device-state-changelog"
LANE_STATE_CHANGELOG = "forewarn-lane-state-changelog"


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name and the configuration Forewarn creates it with."""

    name: str
    cleanup_policy: Literal["delete", "compact"]
    retention_ms: int
    max_message_bytes: int
    partitions: int | None = None  # None: the deployment's FOREWARN_TOPIC_PARTITIONS
    purpose: str = ""

    def partition_count(self, settings: Settings) -> int:
        return self.partitions if self.partitions is not None else settings.topic_partitions

    def configs(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(self.max_message_bytes),
        }


# Telemetry accepts large messages so that an oversized reading reaches the worker and is
# dead-lettered with a reason, instead of vanishing in a producer error on the device side.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(TELEMETRY, "delete", 7 * DAY_MS, 4 * MIB, purpose="readings, keyed by device_id"),
    TopicSpec(FAILURES, "delete", 365 * DAY_MS, 1 * MIB, purpose="failure events (labels)"),
    TopicSpec(FEEDBACK, "delete", 365 * DAY_MS, 1 * MIB, purpose="technicians' verdicts"),
    TopicSpec(ALERTS, "delete", 90 * DAY_MS, 1 * MIB, purpose="raised and cleared alerts"),
    TopicSpec(DEAD_LETTER, "delete", 30 * DAY_MS, 8 * MIB, purpose="rejected input + reason"),
    TopicSpec(
        TRAINING_EXAMPLES, "delete", 7 * DAY_MS, 1 * MIB, purpose="labelled features, by group"
    ),
    TopicSpec(MODELS, "compact", -1, 8 * MIB, partitions=1, purpose="signed fleet models"),
    TopicSpec(DEVICE_STATE_CHANGELOG, "compact", -1, 1 * MIB, purpose="per-device state changelog"),
    TopicSpec(
        LANE_STATE_CHANGELOG, "compact", -1, 8 * MIB, purpose="per-partition engine state changelog"
    ),
)

TOPICS_BY_NAME = {spec.name: spec for spec in TOPICS}


def admin_client(settings: Settings, *, timeout_ms: int = 10_000) -> KafkaAdminClient:
    """An admin client for the configured cluster."""
    return KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_options(settings),
        client_id="forewarn-admin",
        request_timeout_ms=timeout_ms,
    )


def ensure_topics(
    settings: Settings, specs: Iterable[TopicSpec] = TOPICS, *, replication_factor: int = 1
) -> list[str]:
    """Create the topics that do not exist yet; return the names created (empty when none)."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        missing = [spec for spec in specs if settings.topic(spec.name) not in existing]
        created: list[str] = []
        for spec in missing:
            topic = NewTopic(
                name=settings.topic(spec.name),
                num_partitions=spec.partition_count(settings),
                replication_factor=replication_factor,
                topic_configs=spec.configs(),
            )
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                continue  # another process created it between our list and create
            created.append(topic.name)
            log.info("topic_created", topic=topic.name, partitions=topic.num_partitions)
        return created
    finally:
        admin.close()
