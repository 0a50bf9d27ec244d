"""Shared field types and the strict base model every message derives from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

MAX_ID_LENGTH = 200
MAX_METRICS = 512
MAX_METRIC_NAME_LENGTH = 128
MAX_TAGS = 32
MAX_TAG_LENGTH = 256
MAX_TEXT_LENGTH = 2000


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC; naive timestamps are rejected."""

DeviceId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f]+$")]
Label = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f]+$")]
MetricName = Annotated[
    str, Field(min_length=1, max_length=MAX_METRIC_NAME_LENGTH, pattern=r"^[^\x00-\x1f]+$")
]
TagValue = Annotated[str, Field(max_length=MAX_TAG_LENGTH)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Message(BaseModel):
    """Immutable, strict message: unknown fields, NaN and infinity are errors."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        allow_inf_nan=False,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )
