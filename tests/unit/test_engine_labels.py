"""Label join: horizon boundaries, provisional negatives, sampling, buffer bound."""

from __future__ import annotations

from pipeline.engine import labels
from pipeline.engine.labels import Labelled
from pipeline.engine.state import DeviceState

DAY = 86400.0
H = 14 * DAY


def _state(days: list[int], width: int = 3) -> DeviceState:
    state = DeviceState("d1", "t", "t")
    for day in days:
        labels.push(state, day * DAY, [float(day)] * width, max_pending=64)
    return state


def test_failure_labels_horizon_inclusive() -> None:
    state = _state(list(range(30)))
    out: list[Labelled] = []
    labels.on_failure(state, 29 * DAY, horizon_s=H, rate=1.0, seed=0, out=out)
    positives = sorted(int(item.ts / DAY) for item in out if item.label)
    negatives = sorted(int(item.ts / DAY) for item in out if not item.label)
    assert positives == list(range(15, 30))  # ts in [29 - 14, 29]: 15 readings
    assert negatives == list(range(15))
    assert state.pending == 0
    assert all(item.source == "failure" for item in out if item.label)
    assert out[0].features == [0.0, 0.0, 0.0]


def test_negative_only_after_horizon_strictly_passed() -> None:
    state = _state([0])
    out: list[Labelled] = []
    labels.age_out(state, 14 * DAY, horizon_s=H, provisional_s=None, rate=1.0, seed=0, out=out)
    assert out == []
    assert state.pending == 1
    labels.age_out(state, 14 * DAY + 1, horizon_s=H, provisional_s=None, rate=1.0, seed=0, out=out)
    assert [(item.ts, item.label, item.source) for item in out] == [(0.0, False, "horizon")]
    assert state.pending == 0


def test_provisional_negative_once_then_positive_on_failure() -> None:
    state = _state([0, 1, 2])
    out: list[Labelled] = []
    labels.age_out(state, 2 * DAY, horizon_s=H, provisional_s=DAY, rate=1.0, seed=0, out=out)
    assert [int(item.ts / DAY) for item in out] == [0, 1]
    assert {item.source for item in out} == {"provisional"}
    labels.age_out(
        state, 2 * DAY, horizon_s=H, provisional_s=DAY, rate=1.0, seed=0, out=out
    )  # nothing twice
    assert len(out) == 2
    labels.on_failure(state, 3 * DAY, horizon_s=H, rate=1.0, seed=0, out=out)
    assert [(int(i.ts / DAY), i.label) for i in out[2:]] == [(0, True), (1, True), (2, True)]


def test_provisional_entries_are_not_emitted_again_at_horizon() -> None:
    state = _state([0, 1])
    out: list[Labelled] = []
    labels.age_out(state, 1 * DAY, horizon_s=H, provisional_s=DAY, rate=1.0, seed=0, out=out)
    labels.age_out(state, 20 * DAY, horizon_s=H, provisional_s=DAY, rate=1.0, seed=0, out=out)
    assert [(int(i.ts / DAY), i.source) for i in out] == [(0, "provisional"), (1, "provisional")]
    assert state.pending == 0


def test_sampling_is_deterministic_and_weighted() -> None:
    keys = [("d1", float(day) * DAY) for day in range(5000)]
    first = [labels.sampled(7, d, t, 0.1) for d, t in keys]
    assert first == [labels.sampled(7, d, t, 0.1) for d, t in keys]
    assert 400 < sum(first) < 600
    assert first != [labels.sampled(8, d, t, 0.1) for d, t in keys]
    state = _state(list(range(40)))
    out: list[Labelled] = []
    labels.age_out(state, 100 * DAY, horizon_s=H, provisional_s=None, rate=0.25, seed=0, out=out)
    assert all(item.weight == 4.0 for item in out)
    assert 0 < len(out) < 40


def test_buffer_is_bounded() -> None:
    state = DeviceState("d1", "t", "t")
    for i in range(100):
        labels.push(state, float(i), [1.0, 2.0], max_pending=10)
    assert state.pending == 10
    assert len(state.pend_vec) == 20
    assert state.dropped == 90
    assert list(state.pend_ts) == [float(i) for i in range(90, 100)]


def test_buffer_handles_growing_widths() -> None:
    state = DeviceState("d1", "t", "t")
    labels.push(state, 0.0, [1.0], 8)
    labels.push(state, 1.0, [2.0, 3.0], 8)
    out: list[Labelled] = []
    labels.on_failure(state, 1.0, horizon_s=H, rate=1.0, seed=0, out=out)
    assert [item.features for item in out] == [[1.0], [2.0, 3.0]]


def test_drain_labels_everything_with_the_verdict() -> None:
    state = _state([0, 1, 2])
    out: list[Labelled] = []
    labels.drain(state, False, out)
    assert [(item.label, item.source, item.weight) for item in out] == [
        (False, "feedback", 1.0)
    ] * 3
