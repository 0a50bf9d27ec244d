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
MAX_TAG_LENGTH = MAX_ID_LENGTH
MAX_TEXT_LENGTH = 2000


EARLIEST = datetime(1677, 9, 22, tzinfo=UTC)
LATEST = datetime(2262, 4, 11, tzinfo=UTC)
"""InfluxDB stores nanoseconds since 1970 in a signed 64-bit integer: a timestamp
outside ``[EARLIEST, LATEST)`` could be accepted but never written."""


def _to_utc(value: datetime) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 at +01:00 is before year 1 in UTC
        raise ValueError("timestamp out of range") from None
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            f"timestamp outside {EARLIEST.date()}..{LATEST.date()} (what InfluxDB can store)"
        )
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp in InfluxDB's range, normalised to UTC; naive ones are rejected."""

MAX_FEATURE_NAME_LENGTH = 256
MAX_FEATURES = 4096

ID_PATTERN = r"^[^\x00-\x1f]*[^\x00-\x1f\\]$"
r"""Identifiers: no control characters (``\n`` ends a line of line protocol) and no
trailing backslash. InfluxDB's line-protocol parser treats a byte after a backslash as
escaped, so a tag value ending in ``\`` cannot be written at all (influxdb#5231); every
other character, backslashes inside included, is stored exactly (see
``pipeline/streaming/lineprotocol.py``)."""

DeviceId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Label = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
MetricName = Annotated[
    str, Field(min_length=1, max_length=MAX_METRIC_NAME_LENGTH, pattern=r"^[^\x00-\x1f]+$")
]
FeatureName = Annotated[
    str, Field(min_length=1, max_length=MAX_FEATURE_NAME_LENGTH, pattern=r"^[^\x00-\x1f]+$")
]
"""A metric name with a feature suffix (``.delta``), or ``type=<device type>``."""
TagValue = Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH, pattern=ID_PATTERN)]
"""Same rules as identifiers: a tag may become a device's model group."""
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
