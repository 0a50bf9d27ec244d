"""Device lives: every failure counts, repairs and replacements start a new life."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.engine import EngineConfig, Evaluator, Scorer
from schemas import FailureEvent, Feedback, MaintenanceEvent, Telemetry

DAY = 86400.0


def _ts(day: float) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day)


def test_every_failure_counts_with_its_own_detection_and_lead() -> None:
    ev = Evaluator(horizon_s=5 * DAY)
    for day in range(40):
        ev.observe_scores("a", "g", _ts(day).timestamp(), 0.1)
        ev.observe_scores("b", "g", _ts(day).timestamp(), 0.1)
        if day == 8:
            ev.observe_raise("a", _ts(day).timestamp())  # 2 days before failure 1
        if day == 12:
            ev.observe_raise("a", _ts(day).timestamp())  # too early for failure 2 (day 30)
        if day == 3:
            ev.observe_raise("b", _ts(day).timestamp())  # b never fails: a false alarm
        if day == 10:
            ev.observe_failure("a", _ts(10))
        if day == 30:
            ev.observe_failure("a", _ts(30))
    figures = ev.report(DAY)
    assert (figures["failures"], figures["detected"], figures["fdr"]) == (2, 1, 0.5)
    assert figures["far"] == 1.0
    assert figures["median_lead"] == 2.0
    details = ev.details(DAY)
    assert details == [
        {
            "device_id": "a",
            "failure_ts": _ts(10).isoformat(),
            "detected": True,
            "lead": 2.0,
            "alerts_before_window": 0,
            "alerts": 1,
        },
        {
            "device_id": "a",
            "failure_ts": _ts(30).isoformat(),
            "detected": False,
            "lead": None,
            "alerts_before_window": 1,
            "alerts": 1,
        },
        {
            "device_id": "b",
            "failure_ts": None,
            "detected": False,
            "lead": None,
            "alerts_before_window": 1,
            "alerts": 1,
        },
    ]


def test_an_alert_before_a_repair_does_not_detect_the_next_failure() -> None:
    ev = Evaluator(horizon_s=5 * DAY)
    ev.observe_scores("a", "g", _ts(0).timestamp(), 0.1)
    ev.observe_raise("a", _ts(1).timestamp())
    ev.observe_maintenance("a", _ts(2))
    ev.observe_failure("a", _ts(4))
    assert ev.report(DAY)["detected"] == 0


def _reading(day: float, value: float) -> Telemetry:
    return Telemetry(device_id="d", ts=_ts(day), device_type="t", metrics={"x": value})


def test_maintenance_resets_the_device_and_drops_its_buffer() -> None:
    scorer = Scorer(EngineConfig(alert_budget=None, provisional_after=None))
    state = None
    for day in range(6):
        state = scorer.on_telemetry(state, _reading(day, 1.0 + day)).state
    assert state is not None
    assert state.n == 6
    assert state.pending == 6
    step = scorer.on_maintenance(state, MaintenanceEvent(device_id="d", ts=_ts(6), kind="replaced"))
    assert step.examples == []
    assert step.state.pending == 0
    assert step.state.n == 0
    after = scorer.on_failure(step.state, FailureEvent(device_id="d", ts=_ts(7)))
    assert after.examples == []  # nothing of the previous life is labelled by this failure


def test_a_replaced_verdict_on_the_open_alert_labels_it_and_starts_a_new_life() -> None:
    scorer = Scorer(EngineConfig(alert_budget=None, high_mark=0.0, provisional_after=None))
    state = None
    for day in range(4):
        state = scorer.on_telemetry(state, _reading(day, 1.0)).state
    assert state is not None
    state.alert_id, state.alerted = "a1", True  # as if the device had raised alert a1
    step = scorer.on_feedback(
        state,
        Feedback(
            device_id="d",
            ts=_ts(4),
            alert_id="a1",
            verdict="replaced",
        ),
    )
    assert [a.reason for a in step.alerts] == ["replaced (feedback)"]
    assert [e.label for e in step.examples] == [True] * 4
    assert step.state.n == 0
    assert not step.state.alerted
