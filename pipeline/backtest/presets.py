"""Per-format defaults of a backtest, fixed by reasoning about the data, not its labels.

- ``backblaze``: error counters, clocks and static values are recognised from the data
  (``pipeline/engine/kinds.py``; on the 2013 file SMART 5 and 197 come out as error
  counters, SMART 9 as a clock used by its level only, ``capacity_bytes`` as static and
  ignored), so one preset fits every Backblaze extract whatever its SMART columns. The
  raise threshold follows each day's ranking without smoothing
  (``threshold_smoothing=1``, chosen on the 2013 file, docs/benchmarks.md). One fleet
  model for all drives (``group_by="fleet"``) with the drive model as a one-hot
  feature: 25 of 37 drive models have fewer than 5 failures in the file, too few for a
  model of their own (measured: FDR 32.5 % against 20.8 % per drive model, see
  docs/benchmarks.md). Failures are rare (about 0.5 % of drives a month), so a reading
  is a provisional negative once its drive has survived one more day, and negatives
  are subsampled at 5 %. A device's first alert also needs an error counter that rose
  within the last day (``fresh_window``, horizon / 14; chosen on the 2013 file,
  docs/benchmarks.md): old damage alone no longer spends the budget. That gate leaves
  about half of a budget unspent, so the budget is 0.5 new alerts per 1,000 drives a
  day, twice the engine's default: what is spent lands near the default's 1 % of the
  fleet over the 2013 file's 40 days (budgets 0.25 to 0.7 measured on that file,
  docs/benchmarks.md "A budget for the fresh-evidence gate").
- ``cmapss``: every engine runs to failure, so provisional negatives would be wrong
  for a horizon's worth of every run: strict negatives only, none subsampled (the data
  is small). No budget: alerts fire at a fixed fleet probability of 0.5 ("more likely
  than not to fail within the horizon") for 3 readings in a row, because sensor noise
  is large from one cycle to the next. Horizon 30 cycles.
- ``csv``: files of any cadence and any fleet size, often a few devices. Every
  duration follows the horizon (:func:`horizon_durations`: the Backblaze ratios, so a
  1-hour horizon on 1 s data behaves like 14 days on daily data). All negatives are
  learnt (the label buffer already bounds them to ``label_slots`` per horizon). No
  budget: a budget per 1,000 devices a day allows a 4-device fleet 0.001 alerts a day;
  instead an alert needs a fleet probability of 0.5 ("more likely than not to fail
  within the horizon"), which the time-stratified examples make meaningful at any
  cadence. ``--alert-budget`` sets a budget. Counters, clocks and ignored metrics come
  from the command line.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

DAY = timedelta(days=1)

PRESETS: dict[str, dict[str, Any]] = {
    "backblaze": {
        "horizon": timedelta(days=14),
        "group_by": "fleet",
        "threshold_smoothing": 1.0,
        "fresh_window": DAY,
        "alert_budget": 0.5,
    },
    "cmapss": {
        "horizon": timedelta(days=30),
        "negative_rate": 1.0,
        "provisional_after": None,
        "alert_budget": None,
        "high_mark": 0.5,
        "alert_k": 3,
        "budget_period": DAY,
    },
    "csv": {
        "negative_rate": 1.0,
        "alert_budget": None,
        "high_mark": 0.5,
    },
}
"""``EngineConfig`` keyword arguments per dataset format (command-line options win)."""

RULE_COUNTERS: dict[str, tuple[str, ...]] = {
    "backblaze": ("smart_5_raw", "smart_197_raw"),
}
"""Counters of the ``baseline`` rule per format: the reference rule of
``../shared/data/README.md`` ("SMART 5 or 197 rose since the previous reading"). The
engine itself gets no such list: it recognises error counters from the data; the
report's ``rule_any_rose`` and ``rule_any_positive`` use the recognised ones."""

FOLLOW_HORIZON = frozenset({"csv"})
"""Presets whose durations follow the horizon (:func:`horizon_durations`)."""


def horizon_durations(horizon: timedelta) -> dict[str, timedelta]:
    """Durations as fractions of the horizon, the ratios of the engine's 14-day defaults.

    ``ew_halflife`` = horizon / 2, ``rise_halflife`` = 3/14 horizon, ``provisional_after``
    = horizon / 14: for a 14-day horizon exactly the defaults (7 d, 3 d, 1 d).
    """
    return {
        "ew_halflife": horizon / 2,
        "rise_halflife": horizon * 3 / 14,
        "provisional_after": horizon / 14,
    }
