"""Input messages: readings, failure events and technicians' verdicts."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
