"""Output messages: predictions, alerts, training examples and model snapshots."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas._base import (
    MAX_FEATURES,
    SCHEMA_VERSION,
    DeviceId,
    FeatureName,
    Label,
    Message,
    Probability,
    Text,
    UtcDatetime,
)

MAX_FACTORS = 10


class Factor(Message):
    """One feature's share in a score: what an operator reads as "why"."""

    feature: FeatureName
    value: float
    contribution: float


class Prediction(Message):
    """The score of one reading; every reading gets exactly one."""

    device_id: DeviceId
    device_type: Label
    group: Label
    ts: UtcDatetime
    failure_probability: Probability
    anomaly_score: Probability
    risk: Probability
    top_factors: list[Factor] = Field(default_factory=list, max_length=MAX_FACTORS)
    model_version: int = Field(ge=0)


Severity = Literal["warning", "critical"]
AlertAction = Literal["raise", "clear"]


class Alert(Message):
    """An alert raised or cleared: the ``alerts`` topic, keyed by ``device_id``.

    ``alert_id`` is derived from the device and the reading that raised it, so a
    replay produces the same id and consumers can deduplicate on it.
    """

    schema_version: int = SCHEMA_VERSION
    alert_id: Label
    action: AlertAction
    device_id: DeviceId
    device_type: Label
    group: Label
    ts: UtcDatetime
    raised_at: UtcDatetime
    severity: Severity
    risk: Probability
    failure_probability: Probability
    anomaly_score: Probability
    top_factors: list[Factor] = Field(default_factory=list, max_length=MAX_FACTORS)
    model_version: int = Field(ge=0)
    reason: Text


LabelSource = Literal["failure", "horizon", "feedback", "provisional"]


class TrainingExample(Message):
    """A labelled feature vector: the ``training-examples`` topic, keyed by model group."""

    group: Label
    device_id: DeviceId
    ts: UtcDatetime
    features: dict[FeatureName, float] = Field(max_length=MAX_FEATURES)
    label: bool
    weight: float = Field(gt=0.0, le=1e6)
    source: LabelSource


class ModelSnapshot(Message):
    """A signed fleet-model snapshot: the compacted ``models`` topic, keyed by group.

    ``payload`` is a pickle; it is loaded only after ``signature`` (HMAC-SHA256 over
    group, version and payload) checks out against the deployment's signing key.
    """

    group: Label
    version: int = Field(ge=0)
    created_at: UtcDatetime
    examples_seen: int = Field(ge=0)
    payload: bytes = Field(max_length=8 * 1024 * 1024)
    signature: str = Field(default="", max_length=128)


class Rejected(Message):
    """The dead-letter envelope: the original bytes, why, and where they came from."""

    source_topic: Label
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    value: bytes
    reason: Text
    rejected_at: UtcDatetime
