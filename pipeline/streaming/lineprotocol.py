"""Predictions, alerts and health figures as InfluxDB line protocol.

Written by hand rather than with ``influxdb_client.Point``: building a ``Point`` costs
about ten times more than an f-string, and the worker writes one line per reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from schemas import Alert, Prediction

PREDICTION = "prediction"
ALERT = "alert"
MODEL_HEALTH = "model_health"
PIPELINE_HEALTH = "pipeline_health"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\\": "\\\\"})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\\": "\\\\"})


def tag(value: str) -> str:
    """Escape a tag key or value (an empty tag value is not allowed: use ``_``)."""
    return value.translate(_TAG_ESCAPES) if value else "_"


def field_string(value: str) -> str:
    """A quoted string field value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def nanoseconds(ts: datetime) -> int:
    """Exact nanoseconds since the epoch (no float rounding)."""
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _fields(values: Mapping[str, float | int | str | bool]) -> str:
    parts = []
    for name, value in values.items():
        if isinstance(value, bool):
            rendered = "true" if value else "false"
        elif isinstance(value, int):
            rendered = f"{value}i"
        elif isinstance(value, float):
            rendered = repr(value)
        else:
            rendered = field_string(value)
        parts.append(f"{tag(name)}={rendered}")
    return ",".join(parts)


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, float | int | str | bool],
    ts: datetime,
) -> str:
    """One line of line protocol; tags are sorted, as InfluxDB recommends."""
    tag_part = "".join(f",{tag(k)}={tag(v)}" for k, v in sorted(tags.items()))
    return (
        f"{measurement.translate(_MEASUREMENT_ESCAPES)}{tag_part} {_fields(fields)} "
        f"{nanoseconds(ts)}"
    )


def prediction_line(prediction: Prediction) -> str:
    """The prediction point: one per reading, keyed by device and reading time."""
    top = prediction.top_factors[0].feature if prediction.top_factors else ""
    return line(
        PREDICTION,
        {
            "device_id": prediction.device_id,
            "device_type": prediction.device_type,
            "group": prediction.group,
        },
        {
            "risk": prediction.risk,
            "failure_probability": prediction.failure_probability,
            "anomaly_score": prediction.anomaly_score,
            "model_version": prediction.model_version,
            "top_factor": top,
        },
        prediction.ts,
    )


def alert_line(alert: Alert) -> str:
    """The alert point, keyed by device, action and the time of the deciding reading."""
    return line(
        ALERT,
        {
            "device_id": alert.device_id,
            "device_type": alert.device_type,
            "group": alert.group,
            "action": alert.action,
            "severity": alert.severity,
        },
        {
            "alert_id": alert.alert_id,
            "risk": alert.risk,
            "reason": alert.reason,
            "top_factors": ", ".join(f.feature for f in alert.top_factors),
        },
        alert.ts,
    )
