"""Label join: horizon boundaries, provisional negatives, sampling, buffer bound."""

from __future__ import annotations

from array import array

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


def test_buffer_covers_the_horizon_at_any_cadence() -> None:
    # One reading a second for a 1-hour horizon: 3,600 readings, at most 33 kept, with
    # weights summing to the readings they stand for; both classes reach the trainer.
    slot_s = 3600.0 / 32
    state = DeviceState("d1", "t", "t")
    for i in range(3600 + 1800):
        out: list[Labelled] = []
        labels.age_out(
            state, float(i), horizon_s=3600.0, provisional_s=None, rate=1.0, seed=0, out=out
        )
        labels.push(state, float(i), [float(i)], 64, slot_s=slot_s, seed=0)
        assert state.pending <= 34
    negatives = out  # the last step's matured negatives
    assert all(not item.label for item in negatives)
    failure: list[Labelled] = []
    labels.on_failure(state, 5399.0, horizon_s=3600.0, rate=1.0, seed=0, out=failure)
    positives = [item for item in failure if item.label]
    assert 32 <= len(positives) <= 33
    assert abs(sum(item.weight for item in positives) - 3601) <= 112  # one slot's worth
    assert positives[0].ts < 1800.0 + 2 * slot_s
    assert positives[-1].ts > 5399.0 - slot_s
    assert state.dropped == 0


def test_slot_choice_is_seeded_and_deterministic() -> None:
    def kept(seed: int) -> list[float]:
        state = DeviceState("d1", "t", "t")
        for i in range(1000):
            labels.push(state, float(i), [float(i)], 64, slot_s=100.0, seed=seed)
        return list(state.pend_ts)

    assert kept(1) == kept(1)
    assert kept(1) != kept(2)
    assert [int(t // 100) for t in kept(1)] == list(range(10))


def test_a_copied_state_is_equal_and_shares_no_container() -> None:
    """``DeviceState.copy`` spells its slots out: a slot added later must be copied too."""
    state = DeviceState("d", "t", "g")
    state.add_metrics(["a", "b"])
    for name in state.__slots__:
        value = getattr(state, name)
        if isinstance(value, array):
            value.extend(value.__class__(value.typecode, [1] * 3))
    state.alert_id, state.alert_ts, state.streak, state.n = "x", 5.0, 2, 7
    clone = state.copy()
    assert clone == state
    for name in state.__slots__:
        value = getattr(state, name)
        if isinstance(value, list | array):
            assert getattr(clone, name) is not value, name
