"""The engine's one frozen configuration object."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

from pipeline.errors import ConfigError

FLEET_GROUP = "fleet"
REALERT_MODES = ("never", "after_clear", "renew")
"""Values of ``EngineConfig.realert``."""
"""``group_by`` value that puts every device into one model group."""


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine's behaviour depends on; fixed before a run starts.

    Durations are ``timedelta``; a dataset counted in cycles maps one cycle to its
    ``time_unit_seconds`` before building the config (see ``docs/engine.md``).
    """

    horizon: timedelta = timedelta(days=14)
    """A reading is positive if its device fails within ``[ts, ts + horizon]``."""

    group_by: str = "device_type"
    """Model group of a device: ``"device_type"``, ``"fleet"`` (one group) or a tag name."""

    fleet_model: str = "expert-logreg"
    """Name of the fleet pipeline in :data:`pipeline.engine.fleet.FLEET_MODELS`."""

    counter_metrics: tuple[str, ...] = ()
    """Error counters (e.g. reallocated sectors): features in log space, rises, growth
    since first seen, recency of the last change; the expert score reads them. Metrics
    not named in any of the three lists get their kind from the data
    (:mod:`pipeline.engine.kinds`), so these lists are overrides, not required."""

    level_only_metrics: tuple[str, ...] = ()
    """Metrics used only as their current level: clocks and static values whose drift
    or growth would only measure how long a device has been watched (a confounder)."""

    ignored_metrics: tuple[str, ...] = ()
    """Metrics never used (labels in disguise, identifiers, pure fleet-mix values)."""

    kind_evidence: int = 1000
    """Pairs of consecutive readings of a metric seen fleet-wide before its kind is decided."""

    type_feature: bool = True
    """Add a one-hot ``type=<device_type>`` feature (a per-type intercept)."""

    ew_halflife: timedelta = timedelta(days=7)
    """Half-life of each device's exponentially weighted mean and variance per metric."""

    rise_halflife: timedelta = timedelta(days=3)
    """Half-life of the "rose recently" counters and of the last-change recency."""

    baseline_readings: int = 5
    """Readings averaged into a device's first-seen baseline (growth/drift reference)."""

    anomaly_warmup: int = 3
    """Readings a device needs before its anomaly score is anything but 0."""

    anomaly_weight: float = 0.0
    """Weight of the anomaly score in the combined risk (noisy-or with the fleet
    probability). The anomaly score is always a fleet-model feature as well."""

    negative_rate: float = 0.05
    """Share of negative readings emitted as training examples (seeded hash)."""

    weighted_negatives: bool = False
    """Learn negatives with their weight ``1 / negative_rate`` (unbiased probabilities)
    instead of weight 1 (balanced, steadier SGD). Examples always carry the true weight."""

    provisional_after: timedelta | None = timedelta(days=1)
    """Emit a reading as a provisional negative once its device has reported this long
    after it (``None``: only strict negatives once the horizon has passed)."""

    label_slots: int = 32
    """The label buffer keeps one reading per slot of ``horizon / label_slots`` (a
    time-stratified sample, each kept reading weighted by the readings it stands for),
    so it covers the whole horizon whatever the cadence (``docs/engine.md``)."""

    max_pending: int = 64
    """Hard bound on a device's label buffer (oldest dropped first); ``label_slots + 1``
    entries cover a horizon, the rest is headroom for provisional entries."""

    publish_interval: timedelta | None = None
    """Length of a model epoch in event time (``None``: ``horizon / label_slots``): a
    group's model gets a new version at the end of every epoch with new examples, the
    first once both classes have been seen ``min_positives`` times each."""

    allowed_lateness: timedelta | None = None
    """How far behind its partition's newest reading a failure or verdict may arrive and
    still label the model epoch of its own time (``None``: ``horizon / 8``, 1.75 days for
    a 14-day horizon; ``pipeline/engine/schedule.py``). A new model scores from
    ``publish_interval + allowed_lateness`` after its epoch ends."""

    min_positives: int = 10
    """Examples of each class a group's trainer needs before its first model is
    published (and a model scores only after it has learnt this many positives)."""

    alert_k: int = 1
    """Consecutive readings at or above the raise threshold needed to raise an alert."""

    high_mark: float = 0.0
    """Floor of the raise threshold (the budget can only raise it)."""

    low_mark_ratio: float = 0.5
    """An open alert clears when risk drops below ``ratio * raise threshold``."""

    realert: str = "renew"
    """When a device already alerted in its current life may raise again: ``never`` (one
    alert per life), ``after_clear`` (from the reading after its alert cleared, like a new
    alert but free of budget) or ``renew`` (the default: also on the very reading that
    expires an alert, when its risk is still above the threshold). See
    :mod:`pipeline.engine.policy`."""

    critical_ratio: float = 4.0
    """Severity is ``critical`` when risk is at least ``ratio * raise threshold``."""

    alert_budget: float | None = 0.25
    """New alerts allowed per 1,000 devices per ``budget_period``, whatever the cadence:
    each reading adds ``alert_budget / 1000 * dt / budget_period`` tokens, ``dt`` being
    the time since the device's previous reading (at most one period). ``0`` allows no
    new alert; ``None`` disables the budget (then only ``high_mark`` and hysteresis
    decide)."""

    budget_period: timedelta = timedelta(days=1)
    """Unit of time of the budget; the online threshold is re-tuned once a period."""

    budget_burst: float = 2.0
    """Unused budget carries over up to ``burst * budget per period``."""

    fresh_window: timedelta = timedelta(0)
    """With a budget, a device's first alert also needs fresh evidence: one of its error
    counters rose within this window (``0``: no such condition; a device with no
    recognised counter is never held back). Re-alerts do not need it."""

    fresh_ranking: bool = False
    """With ``fresh_window``: the cutoff ranks only readings with fresh evidence, so the
    budget goes to fresh rises (else it ranks every reading and the condition only
    withholds alerts)."""

    threshold_smoothing: float = 0.5
    """Weight of the latest period in the online threshold (EW average in logit space)."""

    top_factors: int = 3
    """Contributing features listed in each prediction."""

    seed: int = 0
    """Seed of every deterministic choice (negative sampling, model initialisation)."""

    extra: dict[str, float] = field(default_factory=dict, compare=False, hash=False)
    """Free-form options of a fleet pipeline (e.g. ``lr``); keys are documented there."""

    def __post_init__(self) -> None:
        checks = (
            (self.horizon > timedelta(0), "horizon must be positive"),
            (0.0 < self.negative_rate <= 1.0, "negative_rate must be in (0, 1]"),
            (self.label_slots >= 1, "label_slots must be at least 1"),
            (self.max_pending >= 1, "max_pending must be at least 1"),
            (self.kind_evidence >= 1, "kind_evidence must be at least 1"),
            (
                self.allowed_lateness is None or self.allowed_lateness >= timedelta(0),
                "allowed_lateness must not be negative",
            ),
            (
                self.publish_interval is None or self.publish_interval > timedelta(0),
                "publish_interval must be positive",
            ),
            (self.min_positives >= 1, "min_positives must be at least 1"),
            (self.alert_k >= 1, "alert_k must be at least 1"),
            (0.0 <= self.high_mark < 1.0, "high_mark must be in [0, 1)"),
            (0.0 <= self.low_mark_ratio <= 1.0, "low_mark_ratio must be in [0, 1]"),
            (
                self.realert in REALERT_MODES,
                f"realert must be one of {', '.join(REALERT_MODES)}",
            ),
            (self.alert_budget is None or self.alert_budget >= 0, "alert_budget must be >= 0"),
            (self.budget_period > timedelta(0), "budget_period must be positive"),
            (self.budget_burst >= 1.0, "budget_burst must be at least 1"),
            (self.fresh_window >= timedelta(0), "fresh_window must not be negative"),
            (0.0 < self.threshold_smoothing <= 1.0, "threshold_smoothing must be in (0, 1]"),
            (0.0 <= self.anomaly_weight <= 1.0, "anomaly_weight must be in [0, 1]"),
            (self.ew_halflife > timedelta(0), "ew_halflife must be positive"),
            (self.rise_halflife > timedelta(0), "rise_halflife must be positive"),
            (self.baseline_readings >= 1, "baseline_readings must be at least 1"),
            (0 <= self.top_factors <= 10, "top_factors must be in [0, 10]"),
            (
                self.provisional_after is None or self.provisional_after > timedelta(0),
                "provisional_after must be positive",
            ),
        )
        if self.alert_budget is not None and not math.isfinite(self.alert_budget):
            raise ConfigError("alert_budget must be a finite number")
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        from pipeline.engine.fleet import FLEET_MODELS

        if self.fleet_model not in FLEET_MODELS:
            names = ", ".join(sorted(FLEET_MODELS))
            raise ConfigError(f"unknown fleet model {self.fleet_model!r} (one of: {names})")

    @property
    def slot_seconds(self) -> float:
        """Width of one label-buffer slot, in seconds."""
        return self.horizon.total_seconds() / self.label_slots

    @property
    def allowed_lateness_seconds(self) -> float:
        """``allowed_lateness`` in seconds (its default resolved)."""
        if self.allowed_lateness is not None:
            return self.allowed_lateness.total_seconds()
        return self.horizon.total_seconds() / 8

    @property
    def publish_interval_seconds(self) -> float:
        """Event time between two model versions, in seconds."""
        if self.publish_interval is not None:
            return self.publish_interval.total_seconds()
        return self.slot_seconds
