"""Per-device state: features, the label buffer and the alert, in compact containers."""

from __future__ import annotations

import sys
from array import array
from typing import Any

from pipeline.engine.features import SLOTS

MAX_DEVICE_METRICS = 512
"""Metric names one device's state tracks at most (a reading carries at most as many).

A reading whose new names would take a device past this limit ages out every metric
the reading does not carry (see :meth:`DeviceState.keep_metrics`): devices that name a
metric per container or process keep the metrics they report now, not every name they
ever used.
"""

MAX_STATE_BYTES = 512 * 1024
"""Size limit of one device's state (:meth:`DeviceState.estimated_bytes`). The metric
limit and ``max_pending`` keep every state below it; a message that would take a
state past it is refused and dead-lettered, the state left as it was."""


class DeviceState:
    """Everything the engine remembers about one device; small, flat and picklable.

    Buffered features live in ``array`` objects (4 bytes per value) and the
    feature state in one flat list rather than dicts keyed by name, and pickling goes
    through a plain tuple, so a Backblaze drive pickles to about 2 KB (measured in
    ``docs/benchmarks.md``).
    The state holds no reference to any shared object: the scorer's layouts and models
    are looked up by value (``metrics``, ``group``).
    """

    __slots__ = (
        "alert_id",
        "alert_ts",
        "alerted",
        "device_id",
        "device_type",
        "dropped",
        "group",
        "last_ts",
        "metrics",
        "n",
        "pend_count",
        "pend_flag",
        "pend_key",
        "pend_ts",
        "pend_vec",
        "pend_width",
        "streak",
        "vals",
    )

    def __init__(self, device_id: str, device_type: str, group: str) -> None:
        self.device_id = device_id
        self.device_type = device_type
        self.group = group
        self.n = 0
        """Readings seen since the state was created or last reset."""
        self.last_ts = 0.0
        """POSIX time of the latest reading."""
        self.metrics: tuple[str, ...] = ()
        """Metric names in slot order (append-only)."""
        self.vals: list[float] = []
        """``SLOTS`` floats per metric, see :mod:`pipeline.engine.features` (a list:
        slices of it are read and written once per metric and reading)."""
        self.pend_ts: array[float] = array("d")
        """Times of the readings awaiting their label, oldest first."""
        self.pend_width: array[int] = array("H")
        """Feature count of each buffered vector (layouts only grow)."""
        self.pend_flag: array[int] = array("B")
        """1 once the reading has been emitted as a provisional negative."""
        self.pend_count: array[int] = array("I")
        """Readings each buffered entry stands for (its slot's count)."""
        self.pend_key: array[int] = array("I")
        """``labels.slot_key`` of each buffered entry (the smallest of its slot wins)."""
        self.pend_vec: array[float] = array("f")
        """Buffered feature vectors, concatenated, as 32-bit floats."""
        self.dropped = 0
        """Readings pushed out of a full buffer before their label was known."""
        self.alert_id: str | None = None
        """Id of the open alert, if any."""
        self.alert_ts = 0.0
        """POSIX time of the reading that raised the open alert."""
        self.streak = 0
        """Consecutive readings at or above the raise threshold."""
        self.alerted = False
        """Whether the device has ever raised an alert (then re-alerts cost no budget)."""

    def add_metrics(self, names: list[str]) -> None:
        """Append new metrics (their slots start empty: ``NOBS`` = 0)."""
        self.metrics = (*self.metrics, *names)
        self.vals.extend([0.0] * (SLOTS * len(names)))

    def keep_metrics(self, names: set[str]) -> int:
        """Age out every metric not in ``names``; returns how many were dropped.

        The feature vectors still awaiting a label were computed over the old metric
        layout, so they are dropped too (counted in ``dropped``).
        """
        kept = [i for i, name in enumerate(self.metrics) if name in names]
        removed = len(self.metrics) - len(kept)
        if removed:
            vals = self.vals
            self.vals = [v for i in kept for v in vals[i * SLOTS : (i + 1) * SLOTS]]
            self.metrics = tuple(self.metrics[i] for i in kept)
            self.dropped += len(self.pend_ts)
            for name in self.__slots__:
                if name.startswith("pend_"):
                    setattr(self, name, array(getattr(self, name).typecode))
        return removed

    def estimated_bytes(self) -> int:
        """Approximate pickled size in bytes (containers dominate it)."""
        return (
            8 * len(self.vals)
            + sum(len(name) + 5 for name in self.metrics)
            + 13 * len(self.pend_ts)
            + 4 * len(self.pend_vec)
            + len(self.device_id)
            + len(self.device_type)
            + len(self.group)
            + 200
        )

    def copy(self) -> DeviceState:
        """An independent copy (every list and array copied), for copy-on-write callers."""
        # Spelt out: the worker copies a state per reading, and this is twice as fast as a
        # loop over the slots (``bench/engine_throughput.py``).
        clone = DeviceState.__new__(DeviceState)
        clone.alert_id = self.alert_id
        clone.alert_ts = self.alert_ts
        clone.alerted = self.alerted
        clone.device_id = self.device_id
        clone.device_type = self.device_type
        clone.dropped = self.dropped
        clone.group = self.group
        clone.last_ts = self.last_ts
        clone.metrics = self.metrics
        clone.n = self.n
        clone.pend_count = self.pend_count[:]
        clone.pend_flag = self.pend_flag[:]
        clone.pend_key = self.pend_key[:]
        clone.pend_ts = self.pend_ts[:]
        clone.pend_vec = self.pend_vec[:]
        clone.pend_width = self.pend_width[:]
        clone.streak = self.streak
        clone.vals = self.vals[:]
        return clone

    def reset_features(self) -> None:
        """Start a new life: forget the baseline and the watch-list mark (failure, repair,
        replacement)."""
        self.vals = [0.0] * len(self.vals)
        self.n = 0
        self.alerted = False
        self.streak = 0

    @property
    def pending(self) -> int:
        """Number of readings awaiting their label."""
        return len(self.pend_ts)

    def __getstate__(self) -> tuple[Any, ...]:
        # In slot order. The label buffer goes as little-endian bytes: pickling an
        # ``array`` itself costs about 4 µs (six per state, and the worker writes a state
        # per reading), its bytes 0.1 µs (``bench/state_encoding.py``).
        return (
            self.alert_id,
            self.alert_ts,
            self.alerted,
            self.device_id,
            self.device_type,
            self.dropped,
            self.group,
            self.last_ts,
            self.metrics,
            self.n,
            _packed(self.pend_count),
            _packed(self.pend_flag),
            _packed(self.pend_key),
            _packed(self.pend_ts),
            _packed(self.pend_vec),
            _packed(self.pend_width),
            self.streak,
            self.vals,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Without it, pickle asks copyreg for the slot names on every state (about 3 µs).
        return (_restored, (self.__getstate__(),))

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            typecode = _ARRAYS.get(name)
            if typecode is None or isinstance(value, array):  # arrays: an older record
                setattr(self, name, value)
            else:
                setattr(self, name, _unpacked(typecode, value))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceState):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"DeviceState(device_id={self.device_id!r}, group={self.group!r}, n={self.n}, "
            f"pending={self.pending}, alert_id={self.alert_id!r})"
        )


_ARRAYS = {
    "pend_count": "I",
    "pend_flag": "B",
    "pend_key": "I",
    "pend_ts": "d",
    "pend_vec": "f",
    "pend_width": "H",
}
"""The label buffer's arrays and their type codes."""


def _restored(state: tuple[Any, ...]) -> DeviceState:
    restored = DeviceState.__new__(DeviceState)
    restored.__setstate__(state)
    return restored


_SWAP = sys.byteorder != "little"


def _packed(values: array[Any]) -> bytes:
    if _SWAP:
        values = values[:]
        values.byteswap()
    return values.tobytes()


def _unpacked(typecode: str, data: bytes) -> array[Any]:
    values = array(typecode, data)
    if _SWAP:
        values.byteswap()
    return values
