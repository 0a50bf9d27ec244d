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

The buffer is a time-stratified sample: time is cut into slots of ``horizon /
label_slots`` seconds (a fixed grid, so every replay cuts alike) and the buffer keeps one
reading per slot, the one with the smallest seeded hash of ``(seed, device_id, ts)``
among the slot's readings (a uniform, deterministic choice), with ``count`` = how many
readings it stands for. Examples carry ``weight = count`` (positives) or
``count / negative_rate`` (negatives). A device reporting every second and one reporting
every week both reach the trainer with at most ``label_slots + 1`` examples per horizon,
spread over the whole horizon.
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


def slot_key(seed: int, device_id: str, ts: float) -> int:
    """Seeded hash deciding which reading of a slot the buffer keeps (smallest wins)."""
    return zlib.crc32(b"slot|%d|%s|%d" % (seed, device_id.encode(), int(ts * 1000)))


def push(
    state: DeviceState,
    t: float,
    vec: list[float],
    max_pending: int,
    *,
    slot_s: float = 0.0,
    seed: int = 0,
) -> None:
    """Buffer a reading's feature vector, one per slot of ``slot_s`` seconds.

    A reading in the same slot as the newest entry (not yet emitted provisionally)
    only adds to that entry's count, and replaces its vector when its ``slot_key`` is
    smaller. ``slot_s`` 0 keeps every reading. A full buffer drops its oldest entry.
    """
    key = slot_key(seed, state.device_id, t) if slot_s > 0.0 else 0
    pend_ts = state.pend_ts
    if (
        slot_s > 0.0
        and pend_ts
        and state.pend_flag[-1] == 0
        and pend_ts[-1] // slot_s == t // slot_s
    ):
        state.pend_count[-1] += 1
        if key < state.pend_key[-1]:
            width = state.pend_width[-1]
            del state.pend_vec[len(state.pend_vec) - width :]
            pend_ts[-1] = t
            state.pend_width[-1] = len(vec)
            state.pend_key[-1] = key
            state.pend_vec.extend(vec)
        return
    if len(pend_ts) >= max_pending:
        _pop_front(state)
        state.dropped += 1
    pend_ts.append(t)
    state.pend_width.append(len(vec))
    state.pend_flag.append(0)
    state.pend_count.append(1)
    state.pend_key.append(key)
    state.pend_vec.extend(vec)


def _pop_front(state: DeviceState) -> tuple[float, list[float], int, int]:
    width = state.pend_width[0]
    vec = state.pend_vec[:width].tolist()
    del state.pend_vec[:width]
    ts = state.pend_ts.pop(0)
    state.pend_width.pop(0)
    flag = state.pend_flag.pop(0)
    count = state.pend_count.pop(0)
    state.pend_key.pop(0)
    return ts, vec, flag, count


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
                count = state.pend_count[j]
                out.append(Labelled(ts, _vector(state, j), False, weight * count, "provisional"))
    while pend_ts and pend_ts[0] + horizon_s < t:
        ts, vec, flag, count = _pop_front(state)
        if flag == 0 and sampled(seed, state.device_id, ts, rate):
            out.append(Labelled(ts, vec, False, weight * count, "horizon"))


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
        ts, vec, flag, count = _pop_front(state)
        if ts > t_fail:
            continue  # a reading dated after the failure: no label can be trusted
        if ts + horizon_s >= t_fail:
            out.append(Labelled(ts, vec, True, float(count), "failure"))
        elif flag == 0 and sampled(seed, state.device_id, ts, rate):
            out.append(Labelled(ts, vec, False, weight * count, "horizon"))


def drain(state: DeviceState, label: bool, out: list[Labelled]) -> None:
    """Emit every buffered reading with ``label`` (a technician's verdict), weight 1."""
    while state.pend_ts:
        ts, vec, _flag, count = _pop_front(state)
        out.append(Labelled(ts, vec, label, float(count), "feedback"))


def clear(state: DeviceState) -> None:
    """Drop the buffer without emitting anything."""
    state.pend_ts = array("d")
    state.pend_width = array("H")
    state.pend_flag = array("B")
    state.pend_count = array("I")
    state.pend_key = array("I")
    state.pend_vec = array("f")
