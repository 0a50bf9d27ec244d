"""The comparison variants a backtest runs beside the model.

- plain rules, raised on every reading where they fire (no budget, like the reference
  numbers of ``../shared/data/README.md``): the configured rule (``RuleBaseline``) and
  "any error counter > 0" / "any error counter rose" over the error counters the
  engine recognised (``CounterRules``);
- budgeted scores (``BudgetedScore``): the engine's alert policy and budget applied to
  one fixed score: the expert score (``rule_budgeted``: what an operator's hand-written
  rule would do with the same budget) and the anomaly score (``anomaly_only``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.engine import EngineConfig
from pipeline.engine.policy import RAISE, RENEW, Policy


class RuleBaseline:
    """Alert when any listed counter metric rose since the device's previous reading.

    The default for Backblaze (SMART 5 or 197 rose) is the README's best simple rule.
    Like the README's reference numbers, every reading on which the rule fires counts as
    a raised alert (no budget, no hysteresis).
    """

    def __init__(self, counters: Sequence[str]) -> None:
        self.counters = tuple(counters)
        self._last: dict[str, list[float | None]] = {}

    def fires(self, device_id: str, metrics: dict[str, float]) -> bool:
        """Whether the rule fires on this reading (and remember its values)."""
        last = self._last.get(device_id)
        values = [metrics.get(name) for name in self.counters]
        self._last[device_id] = values
        if last is None:
            return False
        return any(
            new is not None and old is not None and new > old
            for new, old in zip(values, last, strict=True)
        )

    def reset(self, device_id: str) -> None:
        """Forget a device (it failed)."""
        self._last.pop(device_id, None)


class CounterRules:
    """ "Any error counter > 0" and "any error counter rose since the previous reading".

    ``counters`` is passed on every reading (the engine's recognised error counters,
    which are decided after its first day or so); a device's previous values are kept
    for exactly those.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[tuple[str, ...], list[float | None]]] = {}

    def fires(
        self, device_id: str, metrics: dict[str, float], counters: tuple[str, ...]
    ) -> tuple[bool, bool]:
        """``(any counter > 0, any counter rose)`` for this reading (and remember it)."""
        values = [metrics.get(name) for name in counters]
        positive = any(v is not None and v > 0.0 for v in values)
        last = self._last.get(device_id)
        self._last[device_id] = (counters, values)
        if last is None or last[0] != counters:
            return positive, False
        rose = any(
            new is not None and old is not None and new > old
            for new, old in zip(values, last[1], strict=True)
        )
        return positive, rose

    def reset(self, device_id: str) -> None:
        """Forget a device (it failed)."""
        self._last.pop(device_id, None)


class BudgetedScore:
    """The engine's alert policy and budget applied to one fixed score (no learning)."""

    def __init__(self, config: EngineConfig) -> None:
        self.policy = Policy(config)
        self._alert: dict[str, tuple[float | None, int]] = {}
        self._alerted: set[str] = set()
        self._last_t: dict[str, float] = {}

    def step(self, device_id: str, anomaly: float, t: float, *, fresh: bool = True) -> bool:
        """Apply the policy to a reading's anomaly score; True when it raises."""
        raised_at, streak = self._alert.get(device_id, (None, 0))
        first = device_id not in self._alerted
        last = self._last_t.get(device_id)
        self._last_t[device_id] = t if last is None or t > last else last
        dt = t - last if last is not None and t > last else 0.0
        action, streak = self.policy.decide(
            raised_at, streak, anomaly, t, first=first, dt=dt, fresh=fresh
        )
        raised = action in (RAISE, RENEW)
        if action:
            raised_at = t if raised else None
            if raised:
                self._alerted.add(device_id)
        self._alert[device_id] = (raised_at, streak)
        return raised

    def reset(self, device_id: str) -> None:
        """A new life of the device (it failed, or was repaired or replaced)."""
        self._alert.pop(device_id, None)
        self._alerted.discard(device_id)
