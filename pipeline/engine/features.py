"""Incremental per-metric features over a device's compact state.

Every metric of a device owns ``SLOTS`` floats in the device's ``array('d')``; one call
of :func:`update` folds a reading into them and writes the reading's feature vector.
Values are taken in signed log space (``copysign(log1p(|v|), v)``), so counters that
jump from 0 to 8 and from 8 to 800 weigh alike and scale-free metrics compare across
devices. Per kind of metric:

- ``counter`` (error counters): level, ``rose`` (the log growth of the last few days:
  every increase adds its size, the sum decays with half-life ``rise_halflife``),
  ``growth`` since the first reading, recency of the last change.
- ``gauge`` (everything else): level, z-score against the device's own exponentially
  weighted mean and variance, drift of that mean from the first-seen baseline.
- ``level`` (clocks, static values): the level only, because their growth measures how
  long the device has been watched, not its health.
- ``ignored``: nothing.

Every feature is independent of the reporting cadence: decays are functions of elapsed
time, ``rose`` adds the size of increases (a rise of 8 reported as one step or as
eight steps of 1 gives the same sum in log space up to the decay), and there is no
per-reading delta. No feature measures history length or time since first seen, and
"time since the last change" enters only as a recency ``0.5 ** (age / rise_halflife)``
that is 0 for a metric that never changed, so it cannot stand in for the age of the
record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

COUNTER, GAUGE, LEVEL, IGNORED = 0, 1, 2, 3
KIND_NAMES = ("counter", "gauge", "level", "ignored")

# Slots of one metric inside a device's value array.
LAST, BASE, EWM, EWV, ROSE, CHANGED, NOBS, FIRST = range(8)
SLOTS = 8
NEVER = -1.0e18
"""``CHANGED`` slot of a metric that never changed."""

Z_FLOOR = 0.01
"""Floor of the standard deviation in log space (a 1 % relative change)."""

_Z_FLOOR_SQ = Z_FLOOR * Z_FLOOR

Z_CAP = 100.0
"""Cap of a squared z-score, so one wild metric cannot dominate the anomaly score."""

_SUFFIXES: dict[int, tuple[str, ...]] = {
    COUNTER: ("", ".rose", ".growth", ".recent"),
    GAUGE: ("", ".z", ".drift"),
    LEVEL: ("",),
    IGNORED: (),
}


def to_log(value: float) -> float:
    """Signed ``log1p``: monotone, 0 at 0, compresses counters and large gauges."""
    return math.copysign(math.log1p(abs(value)), value)


@dataclass(frozen=True)
class Layout:
    """Feature names and metric kinds for one ordered tuple of metric names."""

    metrics: tuple[str, ...]
    kinds: tuple[int, ...]
    names: tuple[str, ...]
    plan: tuple[tuple[int, str, int, bool], ...]
    """``(slot offset, metric name, kind, in the anomaly score)`` of every metric tracked.

    Every metric whose kind was not *configured* as ignored is tracked, and its state is
    updated the same way whatever its kind: a kind only chooses which features are
    emitted. So a device's state and anomaly score depend on its own history only, not
    on when the fleet-wide kind detection decided (it differs between workers and starts
    over when a worker restarts)."""
    counters: tuple[int, ...]
    """Position in the feature vector of each counter's level (then ``rose``, ``growth``)."""

    @property
    def width(self) -> int:
        """Length of the feature vector, the anomaly and expert scores included (last)."""
        return len(self.names)


ANOMALY_FEATURE = "anomaly"
EXPERT_FEATURE = "expert"
"""The expert score's logit: the last feature (see :mod:`pipeline.engine.expert`)."""


def make_layout(
    metrics: Sequence[str],
    kind_of: Mapping[str, int],
    fixed: Mapping[str, int] | None = None,
) -> Layout:
    """Build the layout of ``metrics``; a metric not in ``kind_of`` is a gauge.

    ``fixed`` are the configured kinds (a subset of ``kind_of``): a metric configured
    as ignored is not tracked, one configured as level only stays out of the anomaly
    score; detected kinds change neither.
    """
    fixed = kind_of if fixed is None else fixed
    kinds = tuple(kind_of.get(name, GAUGE) for name in metrics)
    names: list[str] = []
    counters: list[int] = []
    for name, kind in zip(metrics, kinds, strict=True):
        if kind == COUNTER:
            counters.append(len(names))
        names.extend(name + suffix for suffix in _SUFFIXES[kind])
    names.append(ANOMALY_FEATURE)
    names.append(EXPERT_FEATURE)
    plan = tuple(
        (i * SLOTS, name, kind, fixed.get(name) not in (LEVEL, IGNORED))
        for i, (name, kind) in enumerate(zip(metrics, kinds, strict=True))
        if fixed.get(name) != IGNORED
    )
    return Layout(tuple(metrics), kinds, tuple(names), plan, tuple(counters))


def update(
    vals: list[float],
    layout: Layout,
    metrics: Mapping[str, float],
    t: float,
    *,
    ew_decay: float,
    rise_decay: float,
    rise_halflife_s: float,
    baseline_readings: int,
    out: list[float],
) -> float:
    """Fold one reading into ``vals`` and append its features to ``out``.

    ``ew_decay`` and ``rise_decay`` are the decay factors for the time elapsed since
    the device's previous reading (1.0 on its first). A metric missing from the
    reading keeps its state. A counter's growth is measured from its first reading, a
    gauge's drift from the mean of its first ``baseline_readings``. Returns the mean
    capped squared z-score of the device's non-level metrics against its own baseline,
    the input of the anomaly score.
    """
    sq_sum = 0.0
    n_z = 0
    ew_alpha = 1.0 - ew_decay
    log1p = math.log1p
    append = out.append
    for o, name, kind, in_anomaly in layout.plan:
        last, base, ewm, ewv, rose, changed, nobs, first = vals[o : o + SLOTS]
        raw = metrics.get(name)
        if raw is None:
            x = last
            delta = 0.0
        else:
            x = log1p(raw) if raw >= 0.0 else -log1p(-raw)
            if nobs == 0.0:
                base = ewm = first = x
                ewv = rose = 0.0
                changed = NEVER
                delta = 0.0
            else:
                delta = x - last
            nobs += 1.0
            if nobs <= baseline_readings:
                base += (x - base) / nobs
        sd = math.sqrt(ewv) if ewv > _Z_FLOOR_SQ else Z_FLOOR
        if in_anomaly:
            z_base = (x - base) / sd
            z2 = z_base * z_base
            sq_sum += z2 if z2 < Z_CAP else Z_CAP
            n_z += 1
        rose *= rise_decay
        if delta != 0.0:
            changed = t
            if delta > 0.0:
                rose += delta
        if kind == COUNTER:
            recent = 0.0 if changed == NEVER else 0.5 ** ((t - changed) / rise_halflife_s)
            out.extend((x, rose, x - first, recent))
        elif kind == GAUGE:
            out.extend((x, (x - ewm) / sd, ewm - base))
        elif kind == LEVEL:
            append(x)
        if raw is not None:
            diff = x - ewm
            incr = ew_alpha * diff
            ewm += incr
            ewv = ew_decay * (ewv + diff * incr)
        vals[o : o + SLOTS] = (x, base, ewm, ewv, rose, changed, nobs, first)
    return sq_sum / n_z if n_z else 0.0
