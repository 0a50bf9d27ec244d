"""The topic contracts as an AsyncAPI 3.0 document, built from the code that defines them.

Channels come from :data:`pipeline.topics.TOPICS` (name, cleanup policy, retention,
size limit, partitions), payload schemas from the pydantic models (``schemas/``); what
the code cannot say by itself — the key, the ordering and delivery guarantee, an
example — is in :data:`CONTRACTS`, one entry per topic, and a test checks that every
topic has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from pipeline import topics
from pipeline.settings import Settings
from schemas import (
    ALERT_SCHEMA_VERSION,
    Alert,
    Explanation,
    Factor,
    FailureEvent,
    Feedback,
    ModelSnapshot,
    Rejected,
    Telemetry,
    TrainingExample,
)
from schemas.telemetry import MAX_BATCH_BYTES, MAX_BATCH_READINGS, TelemetryBatch

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMA_REF = "#/components/schemas/{model}"

BY_DEVICE = (
    "Keyed by `device_id` (UTF-8). Kafka's default partitioner (murmur2 of the key "
    "modulo the partition count) puts every message of a device on one partition; "
    "`telemetry`, `failures` and `feedback` are **co-partitioned**: same key, same "
    "partition count (`FOREWARN_TOPIC_PARTITIONS`) and the default partitioner, so one "
    "worker sees all of a device's readings, failures and verdicts. A message whose key "
    "is not its `device_id` is dead-lettered."
)
DEVICE_ORDER = (
    "Ordered per device (per partition), not across devices or across the three input "
    "topics; a failure dated after the device's newest reading is held until that "
    "reading arrives."
)
BATCHES = (
    " A `TelemetryBatch` (a JSON object with a top-level `readings` member, which "
    f"`Telemetry` forbids) carries up to {MAX_BATCH_READINGS:,} readings in at most "
    f"{MAX_BATCH_BYTES // 1024:,} KiB, all of devices that map to the partition it is "
    "sent to (the producer picks the partition explicitly; its key is free); a reading "
    "of a device of another partition is dead-lettered. Each reading is validated on "
    "its own: a bad one is dead-lettered alone, with its `index`, the others are kept."
)
INPUT_DELIVERY = (
    "Produce with `acks=all`. Forewarn consumes at least once and applies each message "
    "once per device: the device state records the offset last applied per topic, so a "
    "message read again after a crash is skipped."
)


@dataclass(frozen=True)
class Variant:
    """Another message a topic carries beside its contract's main model."""

    model: type[BaseModel]
    key: str
    example: dict[str, Any]
    example_key: str | None = None


@dataclass(frozen=True)
class Contract:
    """What a topic's consumers and producers must know beyond its configuration."""

    model: type[BaseModel] | None
    """The value's schema (``None``: not JSON, see ``value_description``)."""
    key: str
    partitioning: str
    ordering: str
    delivery: str
    action: str
    """``receive`` if Forewarn reads the topic, ``send`` if it writes it."""
    example: dict[str, Any] | None = None
    example_key: str | None = None
    value_description: str = ""
    variants: tuple[Variant, ...] = ()


TELEMETRY_EXAMPLE: dict[str, Any] = {
    "device_id": "Z300GQRM",
    "ts": "2013-04-18T00:00:00Z",
    "device_type": "ST4000DM000",
    "metrics": {"smart_5_raw": 16.0, "smart_197_raw": 64.0, "smart_194_raw": 27.0},
    "tags": {"datacenter": "sacramento"},
}

CONTRACTS: dict[str, Contract] = {
    topics.TELEMETRY: Contract(
        Telemetry,
        key="device_id",
        partitioning=BY_DEVICE + BATCHES,
        ordering=DEVICE_ORDER,
        delivery=INPUT_DELIVERY,
        action="receive",
        example_key="Z300GQRM",
        example=TELEMETRY_EXAMPLE,
        variants=(
            Variant(
                TelemetryBatch,
                key="free (none, or e.g. the gateway's id); the partition is chosen explicitly",
                example={
                    "schema_version": 1,
                    "readings": [
                        TELEMETRY_EXAMPLE,
                        {
                            "device_id": "S1F07EAZ",
                            "ts": "2013-04-18T00:00:00Z",
                            "device_type": "ST3000DM001",
                            "metrics": {"smart_5_raw": 0.0, "smart_197_raw": 856.0},
                        },
                    ],
                },
            ),
        ),
    ),
    topics.FAILURES: Contract(
        FailureEvent,
        key="device_id",
        partitioning=BY_DEVICE,
        ordering=DEVICE_ORDER,
        delivery=INPUT_DELIVERY,
        action="receive",
        example_key="Z300GQRM",
        example={
            "device_id": "Z300GQRM",
            "ts": "2013-04-25T00:00:00Z",
            "device_type": "ST4000DM000",
            "reason": "replaced: read failures",
        },
    ),
    topics.FEEDBACK: Contract(
        Feedback,
        key="device_id",
        partitioning=BY_DEVICE,
        ordering=DEVICE_ORDER,
        delivery=INPUT_DELIVERY + " Send a verdict once per alert; repeats change nothing.",
        action="receive",
        example_key="Z300GQRM",
        example={
            "device_id": "Z300GQRM",
            "ts": "2013-04-19T09:30:00Z",
            "alert_id": "b9fe7ee2454a338e9c0e",
            "verdict": "false_alarm",
            "technician": "ticketing",
            "note": "SMART short test passed",
        },
    ),
    topics.ALERTS: Contract(
        Alert,
        key="device_id",
        partitioning="Keyed by `device_id`: the raise and the clear of an alert share a partition.",
        ordering="Per device: a clear follows the raise it closes.",
        delivery="At least once: after a crash an alert can appear twice. Deduplicate on "
        "`alert_id` (derived from the device and the reading that raised it, so a replay "
        "keeps it) together with `action`. Written with `acks=all` before the input "
        "offsets are committed.",
        action="send",
        example_key="S1F07EAZ",
        example={
            "schema_version": ALERT_SCHEMA_VERSION,
            "alert_id": "b9fe7ee2454a338e9c0e",
            "action": "raise",
            "device_id": "S1F07EAZ",
            "device_type": "ST3000DM001",
            "group": "fleet",
            "ts": "2013-04-18T00:00:00Z",
            "raised_at": "2013-04-18T00:00:00Z",
            "severity": "critical",
            "risk": 0.957,
            "failure_probability": 0.957,
            "anomaly_score": 0.12,
            "top_factors": [
                {
                    "feature": "smart_197_raw",
                    "value": 6.75,
                    "contribution": 2.1,
                    "label": "pending sectors (SMART 197)",
                }
            ],
            "model_version": 7,
            "reason": "risk above the learned threshold 0.58: pending sectors (SMART 197) "
            "856 sectors, +16 in 3 days",
            "threshold": 0.58,
            "explanations": [
                {
                    "feature": "smart_197_raw",
                    "metric": "smart_197_raw",
                    "name": "pending sectors (SMART 197)",
                    "unit": "sectors",
                    "value": 856.0,
                    "change": 16.0,
                    "window_s": 259200.0,
                    "peer_group": "ST3000DM001",
                    "peer_share_below": 0.998,
                    "peer_share_above": 0.0,
                    "peer_samples": 4210,
                    "contribution": 2.1,
                    "text": "pending sectors (SMART 197) 856 sectors, +16 in 3 days, "
                    "higher than 99.8 % of ST3000DM001 readings",
                }
            ],
            "counters_rose": ["smart_197_raw"],
        },
    ),
    topics.DEAD_LETTER: Contract(
        Rejected,
        key="the rejected message's own key (absent if it had none)",
        partitioning="Keyed by the original key, so a device's rejects stay together.",
        ordering="Per original key.",
        delivery="At least once: a replayed window can repeat an envelope; deduplicate on "
        "`source_topic`, `partition`, `offset` and `index` (the reading's position in a "
        "`TelemetryBatch`, absent for a whole message).",
        action="send",
        example_key="Z300GQRM",
        example={
            "source_topic": "telemetry",
            "partition": 2,
            "offset": 1041,
            "key": "WjMwMEdRUk0=",
            "value": "eyJkZXZpY2VfaWQiOiJaMzAwR1FSTSJ9",
            "reason": "invalid Telemetry: ts: Field required",
            "rejected_at": "2013-04-18T00:00:01Z",
        },
    ),
    topics.TRAINING_EXAMPLES: Contract(
        TrainingExample,
        key="group",
        partitioning="Keyed by model group: one trainer per group sees all its examples. "
        "Not co-partitioned with the device topics. Every scoring lane (input partition) "
        "also sends a `LaneWatermark` marker, keyed `\\u0000lane:<partition>`, to every "
        "partition after its examples: the event-time epoch it has completed.",
        ordering="Per group, in the order the labels matured; a lane's marker follows "
        "its examples in each partition.",
        delivery="At least once: a replayed window can repeat examples (internal topic); "
        "the trainer learns each example once per epoch.",
        action="send",
        example_key="fleet",
        example={
            "group": "fleet",
            "device_id": "Z300GQRM",
            "ts": "2013-04-18T00:00:00Z",
            "features": {"smart_197_raw": 4.17, "smart_197_raw.delta": 2.1, "anomaly": 0.3},
            "label": True,
            "weight": 1.0,
            "source": "failure",
        },
    ),
    topics.MODELS: Contract(
        ModelSnapshot,
        key="group",
        partitioning="One partition; keyed by model group and compacted, so the newest "
        "snapshot of each group survives. After the snapshots of an event-time epoch, "
        "each trainer writes an `EpochClosed` record keyed `\\u0000epochs:<training "
        "partition>`: scorers wait for it before using the epoch's models.",
        ordering="Total (one partition); versions of a group only increase.",
        delivery="Written with `acks=all`; every worker reads the whole topic without a "
        "consumer group and installs a snapshot only if its HMAC checks out.",
        action="send",
        example_key="fleet",
        example={
            "group": "fleet",
            "version": 7,
            "created_at": "2013-04-18T00:00:00Z",
            "examples_seen": 3500,
            "payload": "gASVAAAAAAAAAAA=",
            "signature": "9f2c" + "0" * 60,
        },
    ),
    topics.LANE_STATE_CHANGELOG: Contract(
        None,
        key="partition",
        partitioning="Faust's changelog of the lane-state table: keyed by the input "
        "partition number, written to that partition, so it moves with the partition.",
        ordering="Per input partition.",
        delivery="Internal to the workers; not for consumers.",
        action="send",
        value_description="An HMAC-SHA256-sealed pickle of the partition's engine lane "
        "(alert budget, threshold, counters recognised, watermark). Internal: its layout "
        "changes without notice.",
    ),
    topics.DEVICE_STATE_CHANGELOG: Contract(
        None,
        key="device_id",
        partitioning="Faust's changelog of the device-state table: keyed by `device_id`, "
        "co-partitioned with the device topics.",
        ordering="Per device.",
        delivery="Internal to the workers; not for consumers.",
        action="send",
        value_description="An HMAC-SHA256-sealed pickle of the device record (checked "
        "before it is unpickled). Internal: its layout changes without notice.",
    ),
}


def _model_schemas() -> dict[str, Any]:
    """Every message model's JSON Schema, nested models hoisted into components."""
    schemas: dict[str, Any] = {}
    for model in (
        Telemetry,
        TelemetryBatch,
        FailureEvent,
        Feedback,
        Alert,
        Rejected,
        TrainingExample,
        ModelSnapshot,
        Factor,
        Explanation,
    ):
        schema = model.model_json_schema(ref_template=SCHEMA_REF)
        for name, nested in schema.pop("$defs", {}).items():
            schemas.setdefault(name, nested)
        schemas[model.__name__] = schema
    return schemas


def _retention(ms: int) -> str:
    return "forever (compacted)" if ms < 0 else f"{ms // topics.DAY_MS} days"


def _channel(spec: topics.TopicSpec, contract: Contract, settings: Settings) -> dict[str, Any]:
    address = settings.topic(spec.name)
    description = "\n\n".join(
        [
            f"{spec.purpose[:1].upper()}{spec.purpose[1:]}.",
            f"**Key:** {contract.key}.",
            f"**Partitioning:** {contract.partitioning}",
            f"**Ordering:** {contract.ordering}",
            f"**Delivery:** {contract.delivery}",
            f"**Cleanup policy:** `{spec.cleanup_policy}`; **retention:** "
            f"{_retention(spec.retention_ms)}; **max message size:** "
            f"{spec.max_message_bytes // topics.MIB} MiB.",
        ]
    )
    return {
        "address": address,
        "title": spec.name,
        "description": description,
        "messages": {
            name: {"$ref": f"#/components/messages/{name}"}
            for name in _message_names(spec.name, contract)
        },
        "bindings": {
            "kafka": {
                "topic": address,
                "partitions": spec.partition_count(settings),
                "topicConfiguration": {
                    "cleanup.policy": [spec.cleanup_policy],
                    "retention.ms": spec.retention_ms,
                    "max.message.bytes": spec.max_message_bytes,
                },
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "x-key": contract.key,
        "x-partitioning": contract.partitioning,
        "x-ordering": contract.ordering,
        "x-delivery": contract.delivery,
    }


def _message_name(topic: str, contract: Contract) -> str:
    if contract.model is not None:
        return contract.model.__name__
    return "".join(part.title() for part in topic.replace("_", "-").split("-"))


def _message_names(topic: str, contract: Contract) -> list[str]:
    return [_message_name(topic, contract)] + [v.model.__name__ for v in contract.variants]


def _messages(topic: str, contract: Contract) -> dict[str, dict[str, Any]]:
    """The topic's messages by name: the contract's own, then its variants."""
    if contract.model is None:
        name = _message_name(topic, contract)
        return {
            name: {
                "name": name,
                "bindings": _key_binding(contract.key, contract.example_key),
                "contentType": "application/octet-stream",
                "summary": contract.value_description,
                "payload": {"type": "string", "format": "binary"},
            }
        }
    shapes = [Variant(contract.model, contract.key, contract.example or {}, contract.example_key)]
    messages: dict[str, dict[str, Any]] = {}
    for shape in [*shapes, *contract.variants]:
        name = shape.model.__name__
        messages[name] = {
            "name": name,
            "bindings": _key_binding(shape.key, shape.example_key),
            "contentType": "application/json",
            "title": name,
            "summary": (shape.model.__doc__ or "").strip().splitlines()[0],
            "payload": {"$ref": SCHEMA_REF.format(model=name)},
        }
        if shape.example:
            messages[name]["examples"] = [
                {
                    "name": f"{topic}-example" if shape is shapes[0] else f"{topic}-{name}-example",
                    "summary": f"A {topic} message" + ("" if shape is shapes[0] else f" ({name})"),
                    "payload": shape.example,
                }
            ]
    return messages


def _key_binding(description: str, example: str | None) -> dict[str, Any]:
    key: dict[str, Any] = {"type": "string", "description": description}
    if example is not None:
        key["examples"] = [example]
    return {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING_VERSION}}


def build_document(settings: Settings) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic in ``pipeline.topics.TOPICS``.

    Raises ``KeyError`` naming a topic that has no :data:`CONTRACTS` entry.
    """
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in topics.TOPICS:
        contract = CONTRACTS[spec.name]
        channel_id = spec.name
        channels[channel_id] = _channel(spec, contract, settings)
        name = _message_name(spec.name, contract)
        messages.update(_messages(spec.name, contract))
        verb = "consume" if contract.action == "receive" else "produce"
        operation_id = f"{verb}{name}"
        operations[operation_id] = {
            "action": contract.action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "title": f"Forewarn {'reads' if contract.action == 'receive' else 'writes'} "
            f"{spec.name}",
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{each}"}
                for each in _message_names(spec.name, contract)
            ],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Forewarn topics",
            "version": f"alerts-v{ALERT_SCHEMA_VERSION}",
            "description": "Every Kafka topic Forewarn reads or writes: key, value schema, "
            "partitioning, ordering, delivery guarantee, cleanup policy and retention. "
            "Generated by `forewarn schemas --asyncapi` from `pipeline/topics.py` and the "
            "pydantic models in `schemas/`. Topic names carry the deployment's "
            "`FOREWARN_TOPIC_PREFIX`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": settings.kafka_bootstrap.split(",")[0],
                "protocol": "kafka",
                "description": "The deployment's Kafka (FOREWARN_KAFKA_BOOTSTRAP).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _model_schemas()},
    }
