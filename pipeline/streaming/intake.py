"""Decode raw input messages into schema objects, or say exactly why they are rejected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError

from pipeline import topics
from schemas import FailureEvent, Feedback, Rejected, Telemetry
from schemas._base import ID_PATTERN

MAX_INPUT_BYTES = 64 * 1024
"""A reading larger than this is rejected before parsing: no real device sends one."""

InputMessage = Telemetry | FailureEvent | Feedback

_MODELS: dict[str, type[Telemetry] | type[FailureEvent] | type[Feedback]] = {
    topics.TELEMETRY: Telemetry,
    topics.FAILURES: FailureEvent,
    topics.FEEDBACK: Feedback,
}


@dataclass(frozen=True)
class Rejection:
    """Why a message could not be accepted."""

    reason: str


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
) -> Rejected:
    """The dead-letter envelope for a rejected message."""
    return Rejected(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value or b"",
        reason=rejection.reason,
        rejected_at=datetime.now(UTC),
    )
