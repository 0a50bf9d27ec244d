"""Why an alert was raised, in the operator's terms: raw values, recent change, peers.

Explanations are built only when an alert is raised (never per reading). For each of
the prediction's top factors the explainer names the metric behind the feature (from
the :class:`~pipeline.engine.catalogue.Catalogue`), its raw value in this reading, its
change over the recent window in raw units (from the device's label buffer, which
already holds the level of every metric of the last readings) and how unusual the
value is among devices of the same ``device_type`` (from :class:`PeerSketch`).

The one per-reading cost is :meth:`Explainer.observe`, which the scorer calls for every
``SAMPLE_EVERY``-th reading of a device: one histogram increment per metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from pipeline.engine._construct import construct
from pipeline.engine.catalogue import SMART, Catalogue
from pipeline.engine.features import ANOMALY_FEATURE, COUNTER, EXPERT_FEATURE, Layout
from pipeline.engine.state import DeviceState
from schemas import Explanation, Factor

SAMPLE_EVERY = 4
"""The peer sketch takes every 4th reading of each device (the first one included)."""

BINS_PER_UNIT = 8
"""Sketch resolution: 8 bins per unit of ``log1p`` (values within ~13 % share a bin)."""

MAX_BIN = 40 * BINS_PER_UNIT
"""Values beyond ``±expm1(40)`` share the outermost bin."""

MAX_PEER_TYPES = 2_000
MAX_PEER_METRICS = 512
"""Bounds of the sketch: device types and metrics per type (later ones are not kept)."""

MIN_PEER_SAMPLES = 100
"""A value is compared with its peers only once they have this many sampled readings."""

MAX_EXPLANATIONS = 10

_SUFFIX_WORDS = {
    "": "",
    ".delta": "change since the previous reading",
    ".rose": "recent rises",
    ".growth": "growth since first seen",
    ".recent": "changed recently",
    ".z": "deviation from the device's own normal",
    ".drift": "drift of the device's normal since first seen",
}
TYPE_PREFIX = "type="


class PeerSketch:
    """Per ``(device_type, metric)`` histogram of values in signed ``log1p`` space.

    Deterministic (integer bins, no randomness) and bounded: at most
    ``MAX_PEER_TYPES x MAX_PEER_METRICS x (2 * MAX_BIN + 1)`` counters, in practice a
    few dozen bins per metric. Ranks are exact up to the bin width.
    """

    def __init__(self) -> None:
        self._hists: dict[str, dict[str, dict[int, int]]] = {}

    def add(self, device_type: str, metrics: Mapping[str, float]) -> None:
        """Count one reading of a device of ``device_type``."""
        hists = self._hists.get(device_type)
        if hists is None:
            if len(self._hists) >= MAX_PEER_TYPES:
                return
            hists = self._hists[device_type] = {}
        log1p = math.log1p
        for name, raw in metrics.items():
            hist = hists.get(name)
            if hist is None:
                if len(hists) >= MAX_PEER_METRICS:
                    continue
                hist = hists[name] = {}
            b = _bin(log1p(raw) if raw >= 0.0 else -log1p(-raw))
            hist[b] = hist.get(b, 0) + 1

    def rank(self, device_type: str, metric: str, value: float) -> tuple[float, float, int]:
        """``(share below, share above, samples)`` of ``value`` among the type's readings.

        Values in the same bin as ``value`` count as neither below nor above.
        ``samples`` is 0 when the type or metric has not been seen.
        """
        hist = self._hists.get(device_type, {}).get(metric)
        if not hist:
            return 0.0, 0.0, 0
        b = _bin(to_log(value))
        below = above = total = 0
        for key, count in hist.items():
            total += count
            if key < b:
                below += count
            elif key > b:
                above += count
        return below / total, above / total, total


def _bin(x: float) -> int:
    b = int(x * BINS_PER_UNIT + (0.5 if x >= 0.0 else -0.5))
    return MAX_BIN if b > MAX_BIN else -MAX_BIN if b < -MAX_BIN else b


def to_log(value: float) -> float:
    """Signed ``log1p``, the space the features and the sketch use."""
    return math.copysign(math.log1p(abs(value)), value)


MAX_LOG = 700.0
"""Beyond this a log-space value has no finite raw value (``expm1`` overflows)."""


def from_log(x: float) -> float:
    """Inverse of :func:`to_log`."""
    return math.copysign(math.expm1(abs(x)), x)


class Explained(NamedTuple):
    """The explanations of one alert and the error counters that rose in the window."""

    explanations: list[Explanation]
    counters_rose: list[str]


class Explainer:
    """Turns a raised alert's top factors into :class:`~schemas.Explanation` objects."""

    def __init__(self, catalogue: Catalogue | None, *, window_s: float) -> None:
        self.catalogue = catalogue if catalogue is not None else SMART
        self.window_s = window_s
        self.peers = PeerSketch()
        self._labels: dict[str, str] = {}
        self._metric_of: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self._level_index: dict[tuple[str, ...], dict[str, int]] = {}

    def observe(self, device_type: str, metrics: Mapping[str, float]) -> None:
        """Feed one reading to the peer sketch (the scorer samples which ones)."""
        self.peers.add(device_type, metrics)

    # -- plain words ------------------------------------------------------------------

    def label(self, feature: str) -> str:
        """A feature in plain words, e.g. ``pending sectors (SMART 197): recent rises``."""
        label = self._labels.get(feature)
        if label is None:
            if len(self._labels) >= 100_000:
                self._labels.clear()
            label = self._labels[feature] = self._describe_feature(feature)
        return label

    def _describe_feature(self, feature: str) -> str:
        if feature == ANOMALY_FEATURE:
            return "unusual readings for this device (anomaly score)"
        if feature == EXPERT_FEATURE:
            return "error counters rising or high (expert score)"
        if feature.startswith(TYPE_PREFIX):
            return f"device type {feature[len(TYPE_PREFIX) :]} (its base rate)"
        metric, suffix = split_feature(feature, None)
        words = self.catalogue.get(metric).name
        detail = _SUFFIX_WORDS.get(suffix, suffix.lstrip("."))
        return f"{words}: {detail}" if detail else words

    # -- explanations ------------------------------------------------------------------

    def explain(
        self,
        state: DeviceState,
        layout: Layout,
        reading: Mapping[str, float],
        factors: Sequence[Factor],
        t: float,
    ) -> Explained:
        """Explanations of ``factors`` (then of error counters that rose), at most 10.

        ``state`` is the device's state after the reading at ``t`` was folded in and
        before it was buffered for its label (the scorer's order), so the buffer holds
        the earlier readings the change is measured against.
        """
        metrics = set(layout.metrics)
        past = self._past_levels(state, layout, t)
        counters_rose = []
        for name, kind in zip(layout.metrics, layout.kinds, strict=True):
            if kind != COUNTER and not self.catalogue.get(name).error_counter:
                continue
            change = _change(reading.get(name), past.get(name))
            if change is not None and change[0] > 0.0:
                counters_rose.append(name)
        explanations: list[Explanation] = []
        seen: set[str] = set()
        for factor in factors:
            metric = self._metric(factor.feature, layout.metrics, metrics)
            if metric is None:
                explanations.append(self._non_metric(factor))
                continue
            if metric in seen:
                continue
            seen.add(metric)
            contribution = sum(
                f.contribution
                for f in factors
                if self._metric(f.feature, layout.metrics, metrics) == metric
            )
            explanations.append(
                self._metric_explanation(
                    state=state,
                    metric=metric,
                    feature=factor.feature,
                    reading=reading,
                    past=past,
                    contribution=contribution,
                )
            )
        for metric in counters_rose:
            if metric not in seen and len(explanations) < MAX_EXPLANATIONS:
                seen.add(metric)
                explanations.append(
                    self._metric_explanation(
                        state=state,
                        metric=metric,
                        feature=metric,
                        reading=reading,
                        past=past,
                        contribution=0.0,
                    )
                )
        return Explained(explanations[:MAX_EXPLANATIONS], counters_rose[:MAX_EXPLANATIONS])

    def _metric(self, feature: str, ordered: tuple[str, ...], metrics: set[str]) -> str | None:
        key = (feature, ordered)
        if key not in self._metric_of:
            if len(self._metric_of) >= 100_000:
                self._metric_of.clear()
            metric, _ = split_feature(feature, metrics)
            self._metric_of[key] = metric if metric in metrics else None
        return self._metric_of[key]

    def _past_levels(
        self, state: DeviceState, layout: Layout, t: float
    ) -> dict[str, tuple[float, float]]:
        """``{metric: (raw value, age in s)}`` at the oldest buffered reading in the window."""
        pend_ts = state.pend_ts
        start = t - self.window_s
        offset = 0
        for j, ts in enumerate(pend_ts):
            width = state.pend_width[j]
            # A vector buffered before a metric's kind was decided has another layout.
            if start <= ts < t and width == len(layout.names):
                index = self._level_index.get(layout.names)
                if index is None:
                    index = self._level_index[layout.names] = {
                        name: layout.names.index(name)
                        for name in layout.metrics
                        if name in layout.names
                    }
                vec = state.pend_vec
                return {
                    name: (from_log(vec[offset + i]), t - ts)
                    for name, i in index.items()
                    if i < width and abs(vec[offset + i]) < MAX_LOG
                }
            offset += width
        return {}

    def _metric_explanation(
        self,
        *,
        state: DeviceState,
        metric: str,
        feature: str,
        reading: Mapping[str, float],
        past: Mapping[str, tuple[float, float]],
        contribution: float,
    ) -> Explanation:
        info = self.catalogue.get(metric)
        value = reading.get(metric)
        change = _change(value, past.get(metric))
        below = above = 0.0
        samples = 0
        if value is not None:
            below, above, samples = self.peers.rank(state.device_type, metric, value)
        fields = {
            "feature": feature,
            "metric": metric,
            "name": info.name,
            "unit": info.unit,
            "value": value,
            "change": change[0] if change is not None else None,
            "window_s": change[1] if change is not None else None,
            "peer_group": state.device_type,
            "peer_share_below": below if samples >= MIN_PEER_SAMPLES else None,
            "peer_share_above": above if samples >= MIN_PEER_SAMPLES else None,
            "peer_samples": samples,
            "contribution": contribution,
            "text": "",
        }
        explanation = construct(Explanation, fields)
        return explanation.model_copy(update={"text": describe(explanation)})

    def _non_metric(self, factor: Factor) -> Explanation:
        fields = {
            "feature": factor.feature,
            "metric": None,
            "name": self.label(factor.feature),
            "unit": "",
            "value": factor.value,
            "change": None,
            "window_s": None,
            "peer_group": None,
            "peer_share_below": None,
            "peer_share_above": None,
            "peer_samples": 0,
            "contribution": factor.contribution,
            "text": "",
        }
        explanation = construct(Explanation, fields)
        return explanation.model_copy(update={"text": describe(explanation)})


def split_feature(feature: str, metrics: set[str] | None) -> tuple[str, str]:
    """``(metric, suffix)`` of a feature name, e.g. ``("smart_5_raw", ".delta")``.

    With ``metrics`` given, a feature that is itself a metric name has no suffix (metric
    names may contain dots).
    """
    if metrics is not None and feature in metrics:
        return feature, ""
    head, dot, tail = feature.rpartition(".")
    if dot and "." + tail in _SUFFIX_WORDS:
        return head, "." + tail
    return feature, ""


def _change(value: float | None, past: tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None or past is None:
        return None
    before, age = past
    # Buffered levels are 32-bit floats: snap to the precision of the reading.
    before = float(round(before)) if value == round(value) else float(f"{before:.6g}")
    return value - before, age


# -- rendering -----------------------------------------------------------------------------


def number(value: float) -> str:
    """A raw value as an operator writes it: ``1,234``, ``0.0512``, ``3.2e+09``."""
    if value == round(value) and abs(value) < 1e15:
        return f"{round(value):,}"
    return f"{value:.3g}"


def span(seconds: float) -> str:
    """A duration in the largest sensible unit: ``3 days``, ``1 day``, ``5 h``, ``20 min``."""
    days = seconds / 86_400
    if days >= 1.5:
        return f"{days:.0f} days"
    if days >= 0.95:
        return "1 day"
    if seconds >= 5_400:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 90:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _percent(share: float) -> str:
    return f"{math.floor(share * 1000) / 10:.1f} %"


def _unit(unit: str, value: float | None) -> str:
    """``sectors`` after 2, ``sector`` after 1."""
    return unit[:-1] if value == 1.0 and unit.endswith("s") and len(unit) > 2 else unit


def describe(explanation: Explanation) -> str:
    """One clause per explanation, e.g.
    ``pending sectors (SMART 197) 64 sectors, +56 in 3 days, higher than 99.9 % of
    ST4000DM000 readings``.
    """
    e = explanation
    if e.metric is None:
        if e.value is not None and e.feature == ANOMALY_FEATURE:
            return f"{e.name} {e.value:.2f}"
        return e.name
    unit = f" {_unit(e.unit, e.value)}" if e.unit else ""
    parts = [f"{e.name} {number(e.value)}{unit}" if e.value is not None else f"{e.name} (absent)"]
    if e.change is not None and e.window_s is not None:
        if e.change == 0.0:
            parts.append(f"unchanged in {span(e.window_s)}")
        else:
            sign = "+" if e.change > 0 else "-"
            parts.append(f"{sign}{number(abs(e.change))} in {span(e.window_s)}")
    if e.peer_share_below is not None and e.peer_share_above is not None:
        if e.peer_share_below == 1.0:
            parts.append(f"higher than all {e.peer_samples:,} sampled {e.peer_group} readings")
        elif e.peer_share_above == 1.0:
            parts.append(f"lower than all {e.peer_samples:,} sampled {e.peer_group} readings")
        elif e.peer_share_below >= 0.5:
            parts.append(f"higher than {_percent(e.peer_share_below)} of {e.peer_group} readings")
        elif e.peer_share_above >= 0.5:
            parts.append(f"lower than {_percent(e.peer_share_above)} of {e.peer_group} readings")
        else:
            parts.append(f"typical for {e.peer_group}")
    return ", ".join(parts)
