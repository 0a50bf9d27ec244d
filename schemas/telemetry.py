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


Verdict = Literal["confirmed", "false_alarm", "repaired"]


class Feedback(Message):
    """A technician's verdict on an alert: the ``feedback`` topic, keyed by ``device_id``.

    ``confirmed`` keeps the alert open and labels the device's recent readings positive
    only when a failure follows; ``false_alarm`` closes the alert and labels them
    negative; ``repaired`` closes the alert and resets the device's baseline.
    """

    device_id: DeviceId
    ts: UtcDatetime
    alert_id: Label
    verdict: Verdict
    technician: Label | None = None
    note: Text | None = None
