"""Alert policy: per-device hysteresis under a fleet-level alert budget.

Thresholds compare odds, so they behave alike for a probability of 0.002 and of 0.6:
an open alert clears when its risk's odds fall below ``low_mark_ratio`` times the raise
threshold's odds, and an alert is ``critical`` when its odds are at least
``critical_ratio`` times the threshold's.

The budget (``alert_budget`` new alerts per 1,000 devices per ``budget_period``) does two
things, both from scores only, never from labels:

- a token bucket: a reading adds ``alert_budget / 1000 * min(dt, period) / period``
  tokens, ``dt`` being the time since the same device's previous reading (0 for its
  first), so a device earns the same budget per unit of time whether it reports every
  second or every week. The first alert of a device's life spends one token (re-alerts
  of a device already on the watch list are free but still need the threshold), and
  unused tokens carry over up to ``budget_burst`` periods' worth. This is the hard cap
  on new alerts per period that keeps the false-alarm rate within budget whatever the
  fleet model does. ``alert_budget = 0`` allows no new alert at all;
- an online threshold: at the end of every ``budget_period`` the threshold moves (an
  exponentially weighted average in logit space) toward the risk that would have let
  through exactly the period's budget among devices without an open alert. Tokens then
  go to the riskiest devices rather than to whichever device reports first. The scorer
  also keeps the feature vectors of the period's top candidates and, whenever a new
  fleet model is installed, re-scores them and resets the threshold (see
  :class:`pipeline.engine.scorer.Candidates`): a new model shifts every score, and a
  threshold tuned on the old model's scores would let through far too many or none.

A first alert (the one that spends a token) also needs *fresh evidence* when the
scorer asks for it (``fresh_window``): an error counter that rose within the window.
The cutoff still ranks every device, so the gate only takes alerts away: budget left
unspent is not handed to lower-ranked devices. With ``fresh_ranking`` the cutoff ranks
only readings with fresh evidence, so the budget goes to fresh rises.

Several scoring workers each hold a budget fed by the readings of their own partitions,
so the fleet-wide rate is the same sum; each worker tunes its own threshold from the
risks it sees (partitions are random samples of devices, so they agree closely).
"""

from __future__ import annotations

import hashlib
import heapq
import math

from pipeline.engine.config import EngineConfig

RAISE, CLEAR, RENEW = 1, 2, 3
"""``RENEW``: the open alert expired and the same reading raises a fresh one."""

CANDIDATES_PER_ALERT = 4
"""Risks kept per period for every alert it allows (to tell a ranking from a tie)."""


def alert_id(device_id: str, ts: float) -> str:
    """Deterministic id of the alert raised by a device's reading at ``ts``."""
    return hashlib.sha256(f"{device_id}|{ts!r}".encode()).hexdigest()[:20]


def _odds(p: float) -> float:
    return p / (1.0 - p) if p < 1.0 else math.inf


class AlertBudget:
    """Fleet-level budget state of one scorer; plain floats, picklable."""

    __slots__ = (
        "_cached",
        "_cached_logit",
        "_heap",
        "_heap_size",
        "accrued",
        "burst",
        "floor",
        "period",
        "period_index",
        "period_readings",
        "period_tokens",
        "prev_readings",
        "prev_tokens",
        "rate",
        "smoothing",
        "threshold_logit",
        "tokens",
    )

    def __init__(self, config: EngineConfig) -> None:
        self.period = config.budget_period.total_seconds()
        self.rate = (config.alert_budget or 0.0) / 1000.0 / self.period
        """Tokens per device-second."""
        self.burst = config.budget_burst
        self.smoothing = config.threshold_smoothing
        self.floor = config.high_mark
        self.tokens = 0.0
        self.accrued = 0.0
        """Tokens earned since the start: the new alerts the whole run allowed."""
        self.period_tokens = 0.0
        self.prev_tokens = 0.0
        self.period_index: int | None = None
        self.period_readings = 0
        self.prev_readings = 0
        self.threshold_logit: float | None = None
        self._heap: list[float] = []
        self._heap_size = 1
        self._cached = self.floor
        self._cached_logit: float | None = None

    def threshold(self) -> float:
        """Current raise threshold (a probability)."""
        logit = self.threshold_logit
        if logit is None:
            return self.floor
        if logit != self._cached_logit:
            self._cached_logit = logit
            self._cached = max(self.floor, 1.0 / (1.0 + math.exp(-logit)))
        return self._cached

    def tick(self, t: float, dt: float = 0.0) -> float:
        """Account one reading at POSIX time ``t`` (roll the period, refill tokens).

        ``dt`` is the time since the device's previous reading, in seconds (0 for its
        first). Returns the raise threshold in force for this reading.
        """
        index = int(t // self.period)
        # Periods only move forward: a worker reading several partitions sees days
        # interleave, and a late reading counts toward the current period.
        if self.period_index is None or index > self.period_index:
            if self.period_index is not None:
                self._roll()
            self.period_index = index
        self.period_readings += 1
        earned = self.rate * (dt if dt < self.period else self.period) if dt > 0.0 else 0.0
        period_tokens = self.period_tokens + earned
        self.period_tokens = period_tokens
        self.accrued += earned
        prev = self.prev_tokens
        cap = self.burst * (prev if prev > period_tokens else period_tokens)
        cap = cap if cap > 1.0 else 1.0
        tokens = self.tokens + earned
        self.tokens = tokens if tokens < cap else cap
        if not self.prev_readings:
            self._heap_size = max(1, math.ceil(period_tokens))
        if self.threshold_logit is None:
            return self.floor
        if self.threshold_logit != self._cached_logit:
            return self.threshold()
        return self._cached

    def offer(self, risk: float) -> None:
        """Record the risk of a reading whose device has no open alert."""
        heap = self._heap
        if len(heap) < CANDIDATES_PER_ALERT * self._heap_size:
            heapq.heappush(heap, risk)
        elif risk > heap[0]:
            heapq.heapreplace(heap, risk)

    @property
    def per_period(self) -> int:
        """New alerts the budget allows per period (from the last full period)."""
        return self._heap_size

    def set_threshold(self, risk: float) -> None:
        """Replace the threshold (the scorer re-tunes it when a new model arrives)."""
        candidate = min(max(risk, 1e-12), 1.0 - 1e-12)
        self.threshold_logit = math.log(candidate / (1.0 - candidate))

    def spend(self) -> bool:
        """Take one token for a new alert, if there is one."""
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def _roll(self) -> None:
        needed = self._heap_size
        risks = sorted(self._heap, reverse=True)
        # A cutoff inside a wall of tied risks (every device scored alike, e.g. before
        # the error counters are recognised) or at 0 (no score yet) ranks nothing:
        # keep the previous one.
        if (
            len(risks) >= needed
            and risks[needed - 1] > 0.0
            and (len(risks) == needed or risks[needed - 1] > risks[-1])
        ):
            candidate = min(max(risks[needed - 1], 1e-12), 1.0 - 1e-12)
            logit = math.log(candidate / (1.0 - candidate))
            if self.threshold_logit is None:
                self.threshold_logit = logit
            else:
                s = self.smoothing
                self.threshold_logit = s * logit + (1.0 - s) * self.threshold_logit
        self.prev_readings = self.period_readings
        self.prev_tokens = self.period_tokens
        self.period_readings = 0
        self.period_tokens = 0.0
        self._heap = []
        self._heap_size = max(1, math.ceil(self.prev_tokens))


class Policy:
    """Hysteresis and budget for one variant of risk (model, anomaly-only, rule)."""

    fresh_ranking = False
    """Class default: a policy pickled before ``fresh_ranking`` existed restores without it."""

    def __init__(self, config: EngineConfig, *, budget: bool = True) -> None:
        self.k = config.alert_k
        self.low_ratio = config.low_mark_ratio
        self.critical_ratio = config.critical_ratio
        self.high_mark = config.high_mark
        self.expire_s = config.horizon.total_seconds()
        self.realert = config.realert
        self.budget = AlertBudget(config) if budget and config.alert_budget is not None else None
        self.fresh_ranking = config.fresh_ranking

    def decide(
        self,
        raised_at: float | None,
        streak: int,
        risk: float,
        t: float,
        *,
        first: bool = True,
        dt: float = 0.0,
        fresh: bool = True,
    ) -> tuple[int, int]:
        """Return ``(action, new_streak)`` for a reading; action is 0, RAISE, CLEAR or RENEW.

        ``raised_at`` is the time of the reading that raised the device's open alert
        (``None``: no open alert). An alert is a prediction about one horizon, so it
        also clears (expires) on the first reading more than a horizon after it was
        raised; if the risk is still high the device may raise a fresh one. ``first``
        says the device has never raised an alert: only such alerts spend budget (the
        budget caps how many devices join the watch list, which is what a false-alarm
        rate counts); re-alerts of a listed device still need the threshold. ``dt`` is
        the time since the device's previous reading (what the reading adds to the
        budget). ``realert`` (the config's) says when a device with ``first`` false may
        raise again: ``never``; ``after_clear`` (from the reading after the clear);
        ``renew`` (the default: as ``after_clear``, and the reading that expires an
        alert returns ``RENEW`` when its risk is still above the threshold: the old
        alert clears and a fresh one is raised at once, free of budget). With a
        budget, nothing is raised until the first threshold has been learnt (the end
        of the first budget period, or a model install that re-tunes
        it): the floor ``high_mark`` alone is no threshold an operator could act on.
        ``fresh`` (see ``EngineConfig.fresh_window``) says the reading shows fresh
        evidence; with a budget, a first alert needs it besides the threshold (the
        reading's risk still enters the ranking that sets the threshold, unless the
        config's ``fresh_ranking``).
        """
        budget = self.budget
        threshold = budget.tick(t, dt) if budget is not None else self.high_mark
        if raised_at is not None:
            if _odds(risk) < self.low_ratio * _odds(threshold):
                return CLEAR, 0
            if t - raised_at > self.expire_s:
                renew = risk > threshold if budget is not None else 0.0 < risk >= threshold
                if self.realert == "renew" and renew:
                    return RENEW, 0
                return CLEAR, 0
            return 0, 0
        if not first and self.realert == "never":
            return 0, 0
        if budget is not None:
            if first:
                if not fresh:
                    if not self.fresh_ranking:
                        budget.offer(risk)  # ranked, but a new alert needs fresh evidence
                    return 0, 0
                budget.offer(risk)
            if budget.threshold_logit is None:
                return 0, 0  # warm-up: no threshold learnt yet, so nothing to raise against
            above = risk > threshold  # ties at the cutoff do not pass (clean devices tie)
        else:
            above = risk > 0.0 and risk >= threshold
        if above:
            streak += 1
            if streak >= self.k and (budget is None or not first or budget.spend()):
                return RAISE, 0
            return 0, streak
        return 0, 0

    def threshold(self) -> float:
        """The current raise threshold."""
        return self.budget.threshold() if self.budget is not None else self.high_mark

    def severity(self, risk: float) -> str:
        """``critical`` when the risk's odds are ``critical_ratio`` x the threshold's."""
        if _odds(risk) >= self.critical_ratio * _odds(self.threshold()):
            return "critical"
        return "warning"
