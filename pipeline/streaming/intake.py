"""Decode raw input messages into schema objects, or say exactly why they are rejected."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from pipeline import topics
from pipeline.partitioner import partition_for
from schemas import FailureEvent, Feedback, Rejected, Telemetry
from schemas._base import ID_PATTERN
from schemas.telemetry import (
    MAX_BATCH_BYTES,
    MAX_BATCH_READINGS,
    TELEMETRY_BATCH_SCHEMA_VERSION,
    TelemetryBatch,
)

MAX_INPUT_BYTES = 64 * 1024
"""A single-reading message larger than this is rejected before parsing: no real
device sends one."""

InputMessage = Telemetry | FailureEvent | Feedback

_MODELS: dict[str, type[Telemetry] | type[FailureEvent] | type[Feedback]] = {
    topics.TELEMETRY: Telemetry,
    topics.FAILURES: FailureEvent,
    topics.FEEDBACK: Feedback,
}


@dataclass(frozen=True)
class Rejection:
    """Why a message, or one reading of a batch, could not be accepted.

    ``value`` is the refused reading's own JSON for a reading of a batch (what an
    operator can send again), ``None`` when the whole message is refused.
    """

    reason: str
    value: bytes | None = None


Decoded = tuple[int | None, InputMessage | Rejection]
"""One reading's outcome: its index in the batch (``None``: not a batch) and the result."""


def describe_validation_error(error: ValidationError) -> str:
    """One line naming every bad field, e.g. ``metrics.smart_5: Input should be a valid number``."""
    parts = []
    for item in error.errors(include_url=False)[:5]:
        location = ".".join(str(part) for part in item["loc"]) or "<message>"
        message = item["msg"]
        if item["type"] == "string_pattern_mismatch":
            message = (
                "has a control character or ends with a backslash (InfluxDB's line "
                "protocol cannot store a tag ending in a backslash)"
                if (item.get("ctx") or {}).get("pattern") == ID_PATTERN
                else "has a control character"
            )
        parts.append(f"{location}: {message}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode(topic: str, key: bytes | None, value: bytes | None) -> InputMessage | Rejection:
    """Parse and validate one message from ``topic``; never raises for bad input."""
    model = _MODELS.get(topic)
    if model is None:
        return Rejection(f"no schema for topic {topic!r}")
    if value is None:
        return Rejection("empty message (tombstone)")
    if len(value) > MAX_INPUT_BYTES:
        return Rejection(f"payload of {len(value)} bytes exceeds the {MAX_INPUT_BYTES}-byte limit")
    try:
        message = model.model_validate_json(value)
    except ValidationError as error:
        return Rejection(f"invalid {model.__name__}: {describe_validation_error(error)}")
    if key is not None and key != message.device_id.encode():
        return Rejection(f"key {key[:80]!r} does not match device_id {message.device_id!r}")
    return message


def rejected(
    rejection: Rejection,
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    key: bytes | None,
    value: bytes | None,
    index: int | None = None,
) -> Rejected:
    """The dead-letter envelope for a rejected message, or for reading ``index`` of a
    batch (its position in ``readings``, as :func:`decode_many` numbers it).

    ``value`` is the message's payload; the envelope keeps the rejection's own
    ``value`` instead when it has one (the refused reading of a batch).
    """
    return Rejected(
        source_topic=topic,
        partition=partition,
        offset=offset,
        index=index,
        key=key,
        value=rejection.value if rejection.value is not None else value or b"",
        reason=rejection.reason,
        rejected_at=datetime.now(UTC),
    )


class _ValidBatch(BaseModel):
    """A batch whose readings are all valid: one parse for the common case."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    schema_version: int = Field(
        default=TELEMETRY_BATCH_SCHEMA_VERSION, ge=1, le=TELEMETRY_BATCH_SCHEMA_VERSION
    )
    readings: list[Telemetry] = Field(min_length=1, max_length=MAX_BATCH_READINGS)


def decode_many(
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    partition: int | None,
    partitions: int,
) -> list[Decoded]:
    """Every reading of one message from ``topic``, decoded on its own; never raises for
    bad input.

    A single message (anything but a :class:`~schemas.TelemetryBatch` on ``telemetry``)
    gives one entry with index ``None``, exactly as :func:`decode`. A batch gives one
    entry per reading, in order, with its index: the reading, or a :class:`Rejection`
    carrying the reading's JSON when the reading is invalid or its ``device_id`` does
    not map to ``partition`` among ``partitions`` (not checked when ``partition`` is
    ``None``); the key of a batch is not checked. A batch envelope that is not valid
    (too large, not JSON, no or too many readings, unknown fields) gives one
    ``Rejection`` with index ``None``.
    """
    if topic != topics.TELEMETRY or value is None or not _may_be_batch(value):
        return [(None, decode(topic, key, value))]
    if len(value) > MAX_BATCH_BYTES:
        return [
            (
                None,
                Rejection(
                    f"payload of {len(value)} bytes exceeds the {MAX_BATCH_BYTES}-byte "
                    f"limit of a batch ({MAX_INPUT_BYTES} bytes for a single reading)"
                ),
            )
        ]
    try:
        readings: list[Telemetry | Rejection] = list(
            _ValidBatch.model_validate_json(value).readings
        )
    except ValidationError:
        try:
            envelope = TelemetryBatch.model_validate_json(value)
        except ValidationError as error:
            if not _is_batch(value):
                return [(None, decode(topic, key, value))]
            return [
                (None, Rejection(f"invalid TelemetryBatch: {describe_validation_error(error)}"))
            ]
        readings = [_reading(raw) for raw in envelope.readings]
    if partition is not None:
        _refuse_misplaced(readings, value, partition, partitions)
    return list(enumerate(readings))


def _refuse_misplaced(
    readings: list[Telemetry | Rejection], value: bytes, partition: int, partitions: int
) -> None:
    """Replace each reading whose device maps to another partition by its rejection."""
    raw: list[JsonValue] | None = None
    for index, reading in enumerate(readings):
        if not isinstance(reading, Telemetry):
            continue
        home = partition_for(reading.device_id, partitions)
        if home == partition:
            continue
        if raw is None:  # rare: parse again for the reading's own JSON
            raw = pydantic_core.from_json(value)["readings"]
        own = (
            _own_json(raw[index])
            if isinstance(raw, list) and index < len(raw)
            else reading.model_dump_json().encode()
        )
        readings[index] = Rejection(
            f"device {reading.device_id!r} maps to partition {home} of {partitions}, "
            f"not to this batch's partition {partition}",
            own,
        )


def _may_be_batch(value: bytes) -> bool:
    # A top-level "readings" member is spelt out, or written with \u escapes.
    return b'"readings"' in value or b"\\u" in value


def _is_batch(value: bytes) -> bool:
    try:
        parsed = pydantic_core.from_json(value)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "readings" in parsed


def _own_json(raw: JsonValue) -> bytes:
    """One reading of a batch as JSON bytes of its own (the same JSON value, compact)."""
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode()


def _reading(raw: JsonValue) -> Telemetry | Rejection:
    own = _own_json(raw)
    try:
        return Telemetry.model_validate_json(own)
    except ValidationError as error:
        return Rejection(f"invalid Telemetry: {describe_validation_error(error)}", own)
