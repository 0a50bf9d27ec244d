"""Output messages: predictions, alerts, training examples and model snapshots."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas._base import (
    MAX_FEATURES,
    DeviceId,
    FeatureName,
    Label,
    Message,
    MetricName,
    Probability,
    Text,
    UtcDatetime,
)

MAX_FACTORS = 10

ALERT_SCHEMA_VERSION = 2
"""Version 2 added ``threshold``, ``explanations`` and ``counters_rose`` (docs/operators.md)."""


class Factor(Message):
    """One feature's share in a score: what an operator reads as "why".

    ``value`` is the engine's feature value (signed log space, not the raw reading);
    ``label`` names the feature in plain words (``None`` in messages from before v2).
    """

    feature: FeatureName
    value: float
    contribution: float
    label: Text | None = None


class Explanation(Message):
    """One reason for an alert in the operator's terms (raw units, peers, recent change).

    ``metric`` is ``None`` for factors that are not a metric (the anomaly score, the
    device-type base rate); then ``value`` is the factor's own value. ``change`` is the
    raw change over the last ``window_s`` seconds (``None``: no earlier reading in the
    window). ``peer_share_below`` / ``peer_share_above`` are the shares (0-1) of sampled
    readings of devices of type ``peer_group`` with a lower / higher value (``None``
    until ``peer_samples`` reaches 100). ``contribution`` is the share of the risk's
    log-odds (0 for an error counter listed only because it rose). ``text`` renders all
    of it as one clause.
    """

    feature: FeatureName
    metric: MetricName | None = None
    name: Text
    unit: Text = ""
    value: float | None = None
    change: float | None = None
    window_s: float | None = Field(default=None, ge=0.0)
    peer_group: Label | None = None
    peer_share_below: Probability | None = None
    peer_share_above: Probability | None = None
    peer_samples: int = Field(default=0, ge=0)
    contribution: float = 0.0
    text: Text = ""


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
    replay produces the same id and consumers can deduplicate on it. ``threshold`` is
    the raise threshold in force; ``severity`` is ``critical`` when the risk's odds are
    at least ``critical_ratio`` times the threshold's and an error counter rose in the
    recent window (``counters_rose``), else ``warning`` (docs/operators.md).
    """

    schema_version: int = Field(default=ALERT_SCHEMA_VERSION, ge=1)
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
    threshold: Probability | None = None
    explanations: list[Explanation] = Field(default_factory=list, max_length=MAX_FACTORS)
    counters_rose: list[MetricName] = Field(default_factory=list, max_length=MAX_FACTORS)


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
    emitted_at: UtcDatetime | None = None
    """Event-time stamp that puts the example in its model epoch: the time of the
    message that labelled it, or its partition's watermark minus the allowed lateness
    if that is later (``pipeline/engine/schedule.py``)."""


class ModelSnapshot(Message):
    """A signed fleet-model snapshot: the compacted ``models`` topic, keyed by group.

    ``payload`` is a pickle; it is loaded only after ``signature`` (HMAC-SHA256 over
    group, version and payload) checks out against the deployment's signing key.
    """

    group: Label
    version: int = Field(ge=0)
    created_at: UtcDatetime
    examples_seen: int = Field(ge=0)
    epoch: int | None = None
    """Newest event-time epoch the model learnt (also inside the signed payload)."""
    payload: bytes = Field(max_length=8 * 1024 * 1024)
    signature: str = Field(default="", max_length=128)


class LaneWatermark(Message):
    """Progress of one input partition (a *lane*), sent to every ``training-examples``
    partition after the lane's examples: every example of epochs ``<= complete_through``
    has been sent (``pipeline/engine/schedule.py``). ``idle``: the lane has had nothing
    to process for a while and must not hold the other lanes back."""

    partition: int = Field(ge=0)
    complete_through: int
    idle: bool = False


class EpochClosed(Message):
    """On ``models``, after the snapshots it announces: the trainer of one
    ``training-examples`` partition has closed every epoch through ``closed_through``;
    ``versions`` is the newest version of each of its groups; ``resume_offset`` the
    first offset of the partition that the published versions do not cover (its next
    trainer reads from there; ``None``: not recorded)."""

    training_partition: int = Field(ge=0)
    closed_through: int
    versions: dict[Label, int] = Field(default_factory=dict)
    resume_offset: int | None = Field(default=None, ge=0)


class Rejected(Message):
    """The dead-letter envelope: the original bytes, why, and where they came from.

    For one refused reading of a :class:`~schemas.TelemetryBatch`, ``index`` is the
    reading's position in the batch (from 0) and ``value`` the reading's own JSON (send
    it again as a single message once fixed); for a whole message ``index`` is ``None``
    and ``value`` the message's bytes.
    """

    source_topic: Label
    partition: int | None = None
    offset: int | None = None
    index: int | None = Field(default=None, ge=0)
    key: bytes | None = None
    value: bytes
    reason: Text
    rejected_at: UtcDatetime
