"""What a metric is, in an operator's words: names, units, and which ones count errors.

The built-in catalogue covers the SMART attributes drive fleets report (Backblaze's
``smart_<id>_raw`` and ``smart_<id>_normalized`` columns). Users add or override
entries for any metric (``Catalogue.extended``; the CLI and the worker load them from
the TOML file named by ``FOREWARN_METRIC_CATALOGUE``, see ``docs/operators.md``).
A metric missing from the catalogue is shown under its own name with no unit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One metric as an operator reads it.

    ``error_counter``: a rise of this metric means the device recorded new errors
    (it makes an alert ``critical`` together with a high risk, see ``docs/operators.md``).
    """

    name: str
    unit: str = ""
    error_counter: bool = False


# id: (plain name, unit of the raw value, counts errors)
_SMART: dict[int, tuple[str, str, bool]] = {
    1: ("raw read error rate", "", False),
    2: ("throughput performance", "", False),
    3: ("spin-up time", "ms", False),
    4: ("start/stop count", "starts", False),
    5: ("reallocated sectors", "sectors", True),
    7: ("seek error rate", "", False),
    8: ("seek time performance", "", False),
    9: ("power-on hours", "h", False),
    10: ("spin retries", "retries", True),
    11: ("calibration retries", "retries", True),
    12: ("power cycles", "cycles", False),
    183: ("SATA downshift errors", "errors", True),
    184: ("end-to-end errors", "errors", True),
    187: ("reported uncorrectable errors", "errors", True),
    188: ("command timeouts", "timeouts", True),
    189: ("high fly writes", "writes", True),
    190: ("airflow temperature", "°C", False),
    191: ("G-sense errors", "errors", False),
    192: ("power-off retracts", "retracts", False),
    193: ("load/unload cycles", "cycles", False),
    194: ("temperature", "°C", False),
    195: ("hardware ECC recovered", "", False),
    196: ("reallocation events", "events", True),
    197: ("pending sectors", "sectors", True),
    198: ("offline uncorrectable sectors", "sectors", True),
    199: ("UltraDMA CRC errors", "errors", True),
    200: ("multi-zone error rate", "errors", True),
    220: ("disk shift", "", False),
    222: ("loaded hours", "h", False),
    223: ("load retries", "retries", False),
    224: ("load friction", "", False),
    225: ("load cycles", "cycles", False),
    226: ("load-in time", "ms", False),
    240: ("head flying hours", "h", False),
    241: ("total LBAs written", "LBAs", False),
    242: ("total LBAs read", "LBAs", False),
}


def _smart_entries() -> dict[str, MetricInfo]:
    entries: dict[str, MetricInfo] = {}
    for number, (name, unit, errors) in _SMART.items():
        entries[f"smart_{number}_raw"] = MetricInfo(f"{name} (SMART {number})", unit, errors)
        entries[f"smart_{number}_normalized"] = MetricInfo(
            f"{name} (SMART {number}, normalized health value: lower is worse)"
        )
    return entries


_NAME_PATTERN = re.compile(r"^[^\x00-\x1f]{1,200}$")


class Catalogue:
    """Metric name -> :class:`MetricInfo`; immutable once built."""

    def __init__(self, entries: Mapping[str, MetricInfo]) -> None:
        self._entries = dict(entries)

    def get(self, metric: str) -> MetricInfo:
        """The entry of ``metric``, or its own name with no unit when unknown."""
        info = self._entries.get(metric)
        return info if info is not None else MetricInfo(metric)

    def __contains__(self, metric: object) -> bool:
        return metric in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def extended(self, entries: Mapping[str, MetricInfo]) -> Catalogue:
        """A catalogue with ``entries`` added (they replace built-in entries of that name)."""
        return Catalogue({**self._entries, **entries})


def parse_entries(
    document: Mapping[str, Any], *, source: str = "catalogue"
) -> dict[str, MetricInfo]:
    """Entries from a parsed document ``{"metrics": {name: {name, unit, error_counter}}}``.

    Raises :class:`ConfigError` naming the entry when a field is missing or of the
    wrong type.
    """
    metrics = document.get("metrics")
    if not isinstance(metrics, Mapping):
        raise ConfigError(f"{source}: expected a [metrics.<name>] table per metric")
    entries: dict[str, MetricInfo] = {}
    for metric, entry in metrics.items():
        where = f"{source}: metrics.{metric}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table with name, unit, error_counter")
        unknown = set(entry) - {"name", "unit", "error_counter"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name = entry.get("name")
        unit = entry.get("unit", "")
        errors = entry.get("error_counter", False)
        if not isinstance(name, str) or not _NAME_PATTERN.match(name):
            raise ConfigError(f"{where}: name must be a one-line string of 1-200 characters")
        if not isinstance(unit, str) or len(unit) > 40:
            raise ConfigError(f"{where}: unit must be a string of at most 40 characters")
        if not isinstance(errors, bool):
            raise ConfigError(f"{where}: error_counter must be true or false")
        entries[str(metric)] = MetricInfo(name, unit, errors)
    return entries


SMART = Catalogue(_smart_entries())
"""The built-in catalogue: SMART attributes, raw and normalized."""
