"""Input messages: readings, failure events and technicians' verdicts."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, GetJsonSchemaHandler, JsonValue
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from schemas._base import (
    MAX_METRICS,
    MAX_TAGS,
    DeviceId,
    Label,
    Message,
    MetricName,
    TagValue,
    Text,
    UtcDatetime,
)


class Telemetry(Message):
    """One reading of one device: the ``telemetry`` topic, keyed by ``device_id``."""

    device_id: DeviceId
    ts: UtcDatetime
    device_type: Label
    metrics: dict[MetricName, float] = Field(max_length=MAX_METRICS)
    tags: dict[MetricName, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS)


class FailureEvent(Message):
    """A device failed at ``ts``: the ``failures`` topic, keyed by ``device_id``. A label."""

    device_id: DeviceId
    ts: UtcDatetime
    device_type: Label | None = None
    reason: Text | None = None


Verdict = Literal["confirmed", "false_alarm", "repaired", "replaced"]


class Feedback(Message):
    """A technician's verdict on an alert: the ``feedback`` topic, keyed by ``device_id``.

    ``confirmed`` keeps the alert open and labels the device's recent readings positive
    only when a failure follows; ``false_alarm`` closes the alert and labels them
    negative; ``repaired`` and ``replaced`` close the alert and start a new life of the
    device (fresh baseline).
    """

    device_id: DeviceId
    ts: UtcDatetime
    alert_id: Label
    verdict: Verdict
    technician: Label | None = None
    note: Text | None = None


MaintenanceKind = Literal["repaired", "replaced"]


class MaintenanceEvent(Message):
    """A device was repaired or replaced at ``ts`` (a maintenance log entry).

    Not a failure and not a label: it starts a new life of the device id (fresh
    baseline, empty label buffer, off the watch list). Read from files in backtests.
    """

    device_id: DeviceId
    ts: UtcDatetime
    kind: MaintenanceKind
    device_type: Label | None = None
    reason: Text | None = None


TELEMETRY_BATCH_SCHEMA_VERSION = 1

MAX_BATCH_READINGS = 5000
"""Readings in one :class:`TelemetryBatch` (a full batch of 200-byte readings)."""

MAX_BATCH_BYTES = 1024 * 1024
"""Bytes of one :class:`TelemetryBatch` message; a larger one is refused unparsed."""


class _DocumentedAsReadings:
    """JSON Schema of a batch's ``readings``: an array of ``Telemetry``.

    At runtime the envelope takes any JSON values, so that one bad reading is refused
    on its own (validated as ``Telemetry`` one by one) instead of failing the batch.
    """

    @classmethod
    def __get_pydantic_json_schema__(
        cls, _schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        readings = core_schema.list_schema(
            Telemetry.__pydantic_core_schema__, min_length=1, max_length=MAX_BATCH_READINGS
        )
        return handler(readings)


class TelemetryBatch(Message):
    """Many readings in one ``telemetry`` message, sent by gateways and collectors.

    Every reading's device maps to the partition the message is on (Kafka's default
    partitioner over the ``device_id``); the key is free (``None`` is fine). A message
    is a batch exactly when its JSON object has a top-level ``readings`` member, which
    :class:`Telemetry` forbids. Each reading is validated and dead-lettered on its own;
    the envelope itself (``schema_version``, 1 to ``MAX_BATCH_READINGS`` readings) is
    refused as a whole only if it is not valid.
    """

    schema_version: int = Field(
        default=TELEMETRY_BATCH_SCHEMA_VERSION, ge=1, le=TELEMETRY_BATCH_SCHEMA_VERSION
    )
    readings: Annotated[
        list[JsonValue],
        Field(min_length=1, max_length=MAX_BATCH_READINGS),
        _DocumentedAsReadings,
    ]
