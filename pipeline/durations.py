"""Durations written by people: ``14d``, ``36h``, ``48hours``, ``5min``, ``30cycles``."""

from __future__ import annotations

import re
from datetime import timedelta

from pipeline.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
UNIT_SECONDS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 7 * 86400.0,
    "week": 7 * 86400.0,
    "weeks": 7 * 86400.0,
}
"""Clock units a duration may carry (case-insensitive)."""
DATASET_UNITS = ("", "c", "cycle", "cycles", "u", "unit", "units")
"""Suffixes meaning the dataset's own time unit (a bare number, or cycles)."""
ACCEPTED = "s, m/min, h/hour(s), d/day(s), w/week(s), or cycles / a bare number (dataset units)"


def parse_duration(text: str, time_unit_seconds: float, option: str = "--horizon") -> timedelta:
    """``14d``, ``36h``, ``48hours``, ``5min``, ``2w``; ``30c``/``30cycles`` or ``30``:
    that many dataset time units of ``time_unit_seconds``. Raises ``ConfigError``
    naming ``option`` and the accepted units.
    """
    match = _DURATION.match(text.lower())
    if match is None and _DURATION.match(text.lower().strip().removeprefix("-")):
        raise ConfigError(f"bad {option} {text!r}: must be positive")
    if match is None:
        raise ConfigError(f"bad {option} {text!r}: expected a number and a unit ({ACCEPTED})")
    amount, unit = float(match[1]), match[2]
    if unit in DATASET_UNITS:
        seconds = amount * time_unit_seconds
    elif unit in UNIT_SECONDS:
        seconds = amount * UNIT_SECONDS[unit]
    else:
        raise ConfigError(f"bad {option} {text!r}: unknown unit {unit!r} (accepted: {ACCEPTED})")
    if seconds <= 0:
        raise ConfigError(f"bad {option} {text!r}: must be positive")
    return timedelta(seconds=seconds)
