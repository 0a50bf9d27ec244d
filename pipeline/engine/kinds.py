"""Recognise each metric's kind from the data: error counter, clock, static value or gauge.

A fleet-wide profile of every metric is kept until it has seen ``evidence`` pairs of
consecutive readings of one device; then its kind is decided once and for all
(deterministic: it depends only on the order of the readings). Until then the metric
is a gauge. Rules, in order (labels are never looked at):

1. a negative or non-integer value, or a value that changes on more than
   ``SPARSE_CHANGES`` of the pairs while being zero on most readings: a **gauge**
   (temperatures, rates; SMART 1 read-error rate changes on ~half of the days);
2. zero on at least half the readings and changing on at most ``SPARSE_CHANGES`` of the
   pairs: an **error counter** (reallocated, pending, uncorrectable sectors, command
   timeouts: zero on healthy devices, rising rarely). Falls are allowed: pending sectors
   fall when they are remapped (a third of SMART 197's changes on the 2013 file);
3. never changing: a **static** value (capacity, a fixed property), ignored: it says
   which kind of device this is, which the device type already says, and it is the
   confounder "fleet mix";
4. rising on the pairs where it changes and hardly ever falling (at most
   ``CLOCK_FALLS`` of its changes): a **clock** (power-on hours, load cycles, bytes
   written), used as its level only: its growth is the length of the record (a
   confounder), while its level, the device's age and usage, carries signal (on the
   2013 file the fleet model ranked worse without power-on hours, docs/engine.md);
5. anything else: a gauge.

Measured on the first 100,000 rows of the two Backblaze files: SMART 5, 187, 188, 197,
198 are zero on 93-99 % of readings and change on under 0.5 % of pairs (counters);
SMART 1 (2013) is zero on 52 % but changes on 49 % of pairs and SMART 194 falls as often
as it rises (gauges); SMART 9, 193, 241, 242 only rise (clocks); ``capacity_bytes``
never changes (static).

Metrics named in ``EngineConfig.counter_metrics`` / ``level_only_metrics`` /
``ignored_metrics`` keep the kind given there and are not profiled.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.engine.features import COUNTER, GAUGE, IGNORED, LEVEL

SPARSE_CHANGES = 0.05
"""Largest share of reading pairs on which an error counter changes."""

CLOCK_FALLS = 0.01
"""Largest share of a clock's changes that are falls (resets, glitches)."""


class MetricProfile:
    """Counts over one metric's readings and pairs of consecutive readings."""

    __slots__ = ("falls", "nonint", "pairs", "readings", "rises", "zeros")

    def __init__(self) -> None:
        self.readings = self.zeros = self.nonint = 0
        self.pairs = self.rises = self.falls = 0

    def kind(self) -> int:
        """The kind these counts point to (rules in the module docstring)."""
        changes = self.rises + self.falls
        if self.nonint:
            return GAUGE
        sparse = changes <= SPARSE_CHANGES * self.pairs
        if 2 * self.zeros >= self.readings and sparse:
            return COUNTER
        if changes == 0:
            return IGNORED
        if self.falls <= CLOCK_FALLS * changes:
            return LEVEL
        return GAUGE


MAX_PROFILES = 100_000
"""Undecided metric names profiled at once; past it a new name is not profiled (it is a
gauge until decided) so names that never repeat (per-container metrics) cannot grow the
scorer without bound (docs/reliability.md)."""


class KindDetector:
    """Fleet-wide kind of every metric; decided per metric after ``evidence`` pairs."""

    def __init__(self, fixed: Mapping[str, int], evidence: int) -> None:
        self.kind_of: dict[str, int] = dict(fixed)
        """Decided kinds (the fixed ones from the start)."""
        self.fixed: dict[str, int] = dict(fixed)
        """The configured kinds."""
        self.evidence = evidence
        self.profiles: dict[str, MetricProfile] = {}
        self.version = 0
        """Bumped whenever a kind is decided (layouts built before are stale)."""

    def undecided(self, name: str) -> bool:
        """Whether ``name`` is still being profiled."""
        return name not in self.kind_of

    def observe(self, name: str, raw: float, change: float | None) -> None:
        """Count one reading of an undecided metric.

        ``change`` is the reading's value minus the device's previous value of the
        metric, in any monotone transform of it (``None``: no previous value).
        """
        profile = self.profiles.get(name)
        if profile is None:
            if len(self.profiles) >= MAX_PROFILES:
                return
            profile = self.profiles[name] = MetricProfile()
        profile.readings += 1
        if raw == 0.0:
            profile.zeros += 1
        elif raw < 0.0 or not raw.is_integer():
            profile.nonint += 1
        if change is not None:
            profile.pairs += 1
            if change > 0.0:
                profile.rises += 1
            elif change < 0.0:
                profile.falls += 1
            if profile.pairs >= self.evidence:
                self.kind_of[name] = profile.kind()
                del self.profiles[name]
                self.version += 1

    def counters(self) -> tuple[str, ...]:
        """Metrics decided to be error counters, sorted."""
        return tuple(sorted(name for name, kind in self.kind_of.items() if kind == COUNTER))
