"""Readings, predictions, alerts and health figures as InfluxDB line protocol.

Written by hand rather than with ``influxdb_client.Point``: building a ``Point`` costs
about ten times more than an f-string, and the worker writes one line per reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from schemas import Alert, Prediction, Telemetry

READING = "reading"
PREDICTION = "prediction"
ALERT = "alert"
MODEL_HEALTH = "model_health"
PIPELINE_HEALTH = "pipeline_health"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# InfluxDB 2.7's parser (models/points.go) takes a byte as escaped when the byte before
# it is a backslash, and unescapes only "\,", "\=" and "\ " in tags: a backslash is
# written as it is (doubling it would store it doubled) and only the three separators
# get one. "a\,b" goes out as "a\\,b" and reads back exactly. A value ending in a
# backslash cannot be written at all; ``schemas._base.ID_PATTERN`` refuses it at intake.
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})


def tag(value: str) -> str:
    """Escape a tag key or value for InfluxDB 2.7 (an empty tag value is not allowed: use ``_``).

    Exact for every value without control characters and without a trailing backslash;
    raises ``ValueError`` for the others rather than write a line that would poison
    its whole batch.
    """
    if not value:
        return "_"
    if value[-1] == "\\" or (not value.isprintable() and any(c < " " for c in value)):
        raise ValueError(f"{value!r} cannot be written as an InfluxDB tag")
    return value.translate(_TAG_ESCAPES)


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


_SERIES_PREFIXES: dict[tuple[str, str, str, str], str] = {}
_MAX_CACHED_PREFIXES = 1_000_000
_QUOTED: dict[str, str] = {}
_NANOS: dict[datetime, int] = {}
_MAX_CACHED_NANOS = 100_000


def reading_nanoseconds(ts: datetime) -> int:
    """:func:`nanoseconds`, cached: a reading's time is turned into a point timestamp
    several times per reading (prediction, raw metrics, rollup), and a fleet's readings
    share their times."""
    ts_ns = _NANOS.get(ts)
    if ts_ns is None:
        if len(_NANOS) >= _MAX_CACHED_NANOS:
            _NANOS.clear()
        ts_ns = _NANOS[ts] = nanoseconds(ts)
    return ts_ns


def device_series(measurement: str, device_id: str, device_type: str, group: str) -> str:
    """``measurement,device_id=…,device_type=…,group=… `` (with the space before the
    fields): a device's series, escaped once per device (a hot path: one per reading)."""
    key = (measurement, device_id, device_type, group)
    prefix = _SERIES_PREFIXES.get(key)
    if prefix is None:
        if len(_SERIES_PREFIXES) >= _MAX_CACHED_PREFIXES:
            _SERIES_PREFIXES.clear()
        prefix = _SERIES_PREFIXES[key] = (
            f"{measurement},device_id={tag(device_id)},device_type={tag(device_type)},"
            f"group={tag(group)} "
        )
    return prefix


def prediction_line(prediction: Prediction) -> str:
    """The prediction point: one per reading, keyed by device and reading time.

    The hot path of the sink (one call per reading): tags are escaped once per device.
    """
    top = prediction.top_factors[0].feature if prediction.top_factors else ""
    quoted_top = _QUOTED.get(top)
    if quoted_top is None:
        quoted_top = _QUOTED[top] = field_string(top) if len(_QUOTED) < 10_000 else ""
    ts_ns = reading_nanoseconds(prediction.ts)
    series = device_series(
        PREDICTION, prediction.device_id, prediction.device_type, prediction.group
    )
    return (
        f"{series}"
        f"risk={float(prediction.risk)!r},"
        f"failure_probability={float(prediction.failure_probability)!r},"
        f"anomaly_score={float(prediction.anomaly_score)!r},"
        f"model_version={int(prediction.model_version)}i,"
        f"top_factor={quoted_top or field_string(top)} {ts_ns}"
    )


_READING_PREFIXES: dict[tuple[str, str], str] = {}
_FIELD_KEYS: dict[str, str] = {}
_MAX_CACHED_FIELD_KEYS = 100_000
_UNWRITABLE_FIELD_KEYS = frozenset({"time"})
"""InfluxDB refuses a field named ``time`` (422, the point is dropped)."""


def _field_key(name: str) -> str:
    """The escaped field key of a metric, ``""`` if InfluxDB cannot store that name."""
    key = _FIELD_KEYS.get(name)
    if key is None:
        if len(_FIELD_KEYS) >= _MAX_CACHED_FIELD_KEYS:
            _FIELD_KEYS.clear()
        try:
            key = "" if name in _UNWRITABLE_FIELD_KEYS else tag(name)
        except ValueError:
            key = ""
        _FIELD_KEYS[name] = key
    return key


def reading_line(reading: Telemetry) -> str | None:
    """The reading point: its raw metrics as sent, keyed by device and reading time.

    One field per metric (a float, as the schema has it). A metric whose name InfluxDB
    cannot store as a field key is left out of the point (the engine still scores it);
    ``None`` when no metric is left. A replayed reading overwrites its own point.
    """
    fields = []
    for name, value in reading.metrics.items():
        key = _field_key(name)
        if key:
            fields.append(f"{key}={float(value)!r}")
    if not fields:
        return None
    prefix_key = (reading.device_id, reading.device_type)
    prefix = _READING_PREFIXES.get(prefix_key)
    if prefix is None:
        if len(_READING_PREFIXES) >= _MAX_CACHED_PREFIXES:
            _READING_PREFIXES.clear()
        prefix = _READING_PREFIXES[prefix_key] = (
            f"{READING},device_id={tag(reading.device_id)},device_type={tag(reading.device_type)} "
        )
    ts_ns = reading_nanoseconds(reading.ts)
    return f"{prefix}{','.join(fields)} {ts_ns}"


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
            "explanation": "; ".join(e.text for e in alert.explanations),
        },
        alert.ts,
    )
