"""The ``Dataset`` handle every reader returns, and the ``Event`` it yields."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TypeAlias

from schemas import FailureEvent, MaintenanceEvent, Telemetry

Event: TypeAlias = Telemetry | FailureEvent | MaintenanceEvent


def _no_failures() -> Mapping[str, datetime]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A named, re-readable, time-ordered stream of readings and failure events.

    ``source`` is called once per ``events()`` call and must re-read its input, so a
    dataset can be replayed any number of times. ``ground_truth_failures`` holds failure
    times known only to the evaluator (e.g. C-MAPSS test engines); they never appear as
    events and must never reach a model.
    """

    name: str
    format: str
    time_unit: str
    time_unit_seconds: float
    source: Callable[[], Iterator[Event]] = field(repr=False, compare=False)
    ground_truth_failures: Mapping[str, datetime] = field(default_factory=_no_failures, repr=False)
    warnings: tuple[str, ...] = ()
    """What the reader noticed that could make a result meaningless (e.g. a column that
    looks like a label); the backtest report repeats them."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.time_unit_seconds) and self.time_unit_seconds > 0):
            raise ValueError(f"time_unit_seconds must be positive, got {self.time_unit_seconds}")
        # A read-only view, so a caller cannot slip evaluation labels into the dataset.
        object.__setattr__(
            self, "ground_truth_failures", MappingProxyType(dict(self.ground_truth_failures))
        )

    def events(self) -> Iterator[Event]:
        """Read the input again from the start, yielding events in time order.

        Ordered by ``ts``; within one ``ts`` every ``Telemetry`` comes before every
        ``FailureEvent``, and every ``FailureEvent`` before every ``MaintenanceEvent``
        (a component replaced at its failure starts the next life); ties keep file
        order. Raises ``DatasetError`` on bad input.
        """
        return self.source()
