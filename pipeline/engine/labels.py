"""Label join: a device's buffered feature vectors meet their delayed labels.

A reading at ``t`` is positive if its device fails within ``[t, t + horizon]``, and
negative once the horizon has passed without a failure. The engine has no timers: the
horizon "passes" when a later reading of the same device arrives with
``ts > t + horizon`` (in a stream keyed by device, a failure at or before that reading
would have been delivered first). Negatives are subsampled by a seeded hash of
``(seed, device_id, ts)``, so the choice is the same on every replay and every worker.

Provisional negatives (``provisional_after``): a reading is emitted as a negative as
soon as its device has reported ``provisional_after`` later, instead of waiting the
whole horizon; its vector stays buffered, and if the device fails within the horizon
it is emitted again as a positive. This removes the cold start (no negative at all
before the first horizon has passed) at the cost of a few wrong negatives.
"""

from __future__ import annotations

import zlib
from array import array
from typing import NamedTuple

from pipeline.engine.state import DeviceState

_TWO_32 = float(2**32)


class Labelled(NamedTuple):
    """A buffered reading with its label, ready to become a ``TrainingExample``."""

    ts: float
    features: list[float]
    label: bool
    weight: float
    source: str


def sampled(seed: int, device_id: str, ts: float, rate: float) -> bool:
    """Deterministic Bernoulli(rate) draw keyed by the reading (no global RNG state)."""
    if rate >= 1.0:
        return True
    return zlib.crc32(b"%d|%s|%d" % (seed, device_id.encode(), int(ts * 1000))) / _TWO_32 < rate


def push(state: DeviceState, t: float, vec: list[float], max_pending: int) -> None:
    """Buffer a reading's feature vector; a full buffer drops its oldest entry."""
    if len(state.pend_ts) >= max_pending:
        _pop_front(state)
        state.dropped += 1
    state.pend_ts.append(t)
    state.pend_width.append(len(vec))
    state.pend_flag.append(0)
    state.pend_vec.extend(vec)


def _pop_front(state: DeviceState) -> tuple[float, list[float], int]:
    width = state.pend_width[0]
    vec = state.pend_vec[:width].tolist()
    del state.pend_vec[:width]
    ts = state.pend_ts.pop(0)
    state.pend_width.pop(0)
    flag = state.pend_flag.pop(0)
    return ts, vec, flag


def _vector(state: DeviceState, index: int) -> list[float]:
    start = sum(state.pend_width[:index])
    return state.pend_vec[start : start + state.pend_width[index]].tolist()


def age_out(
    state: DeviceState,
    t: float,
    *,
    horizon_s: float,
    provisional_s: float | None,
    rate: float,
    seed: int,
    out: list[Labelled],
) -> None:
    """Emit the negatives that the reading at ``t`` proves (sampled, weight 1/rate)."""
    pend_ts = state.pend_ts
    if not pend_ts:
        return
    weight = 1.0 / rate
    if provisional_s is not None and pend_ts[0] + provisional_s <= t:
        # Flags always form a prefix (they are set oldest first): scan the tail only.
        flags = state.pend_flag
        first = len(flags)
        while first > 0 and flags[first - 1] == 0:
            first -= 1
        for j in range(first, len(pend_ts)):
            ts = pend_ts[j]
            if ts + provisional_s > t:
                break
            flags[j] = 1
            if sampled(seed, state.device_id, ts, rate):
                out.append(Labelled(ts, _vector(state, j), False, weight, "provisional"))
    while pend_ts and pend_ts[0] + horizon_s < t:
        ts, vec, flag = _pop_front(state)
        if flag == 0 and sampled(seed, state.device_id, ts, rate):
            out.append(Labelled(ts, vec, False, weight, "horizon"))


def on_failure(
    state: DeviceState,
    t_fail: float,
    *,
    horizon_s: float,
    rate: float,
    seed: int,
    out: list[Labelled],
) -> None:
    """Emit every buffered reading: positive within the horizon, else negative."""
    weight = 1.0 / rate
    while state.pend_ts:
        ts, vec, flag = _pop_front(state)
        if ts > t_fail:
            continue  # a reading dated after the failure: no label can be trusted
        if ts + horizon_s >= t_fail:
            out.append(Labelled(ts, vec, True, 1.0, "failure"))
        elif flag == 0 and sampled(seed, state.device_id, ts, rate):
            out.append(Labelled(ts, vec, False, weight, "horizon"))


def drain(state: DeviceState, label: bool, out: list[Labelled]) -> None:
    """Emit every buffered reading with ``label`` (a technician's verdict), weight 1."""
    while state.pend_ts:
        ts, vec, _flag = _pop_front(state)
        out.append(Labelled(ts, vec, label, 1.0, "feedback"))


def clear(state: DeviceState) -> None:
    """Drop the buffer without emitting anything."""
    state.pend_ts = array("d")
    state.pend_width = array("H")
    state.pend_flag = array("B")
    state.pend_vec = array("f")
