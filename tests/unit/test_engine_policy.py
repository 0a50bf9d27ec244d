"""Alert policy: hysteresis, expiry, budget, ids and severity."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from pipeline.engine import EngineConfig, alert_id
from pipeline.engine.policy import CLEAR, RAISE, RENEW, AlertBudget, Policy

DAY = 86400.0


def _run(policy: Policy, risks: list[float], step: float = DAY) -> list[int]:
    raised_at: float | None = None
    streak = 0
    actions = []
    for i, risk in enumerate(risks):
        t = i * step
        action, streak = policy.decide(raised_at, streak, risk, t)
        if action in (RAISE, RENEW):
            raised_at = t
        elif action == CLEAR:
            raised_at = None
        actions.append(action)
    return actions


def test_raise_needs_k_readings_and_clears_below_low_mark() -> None:
    policy = Policy(EngineConfig(alert_budget=None, high_mark=0.5, alert_k=2, low_mark_ratio=0.5))
    # odds(0.5) = 1 -> clear below odds 0.5, i.e. risk < 1/3
    actions = _run(policy, [0.6, 0.1, 0.6, 0.7, 0.9, 0.4, 0.34, 0.3, 0.6, 0.6])
    assert actions == [0, 0, 0, RAISE, 0, 0, 0, CLEAR, 0, RAISE]


def test_one_open_alert_and_expiry_after_horizon() -> None:
    config = EngineConfig(alert_budget=None, high_mark=0.5, horizon=timedelta(days=3))
    assert _run(Policy(replace(config, realert="after_clear")), [0.9] * 8) == [
        RAISE,
        0,
        0,
        0,
        CLEAR,
        RAISE,
        0,
        0,
    ]
    # The default renews: the expiring reading clears the old alert and raises a new one.
    assert _run(Policy(config), [0.9] * 8) == [RAISE, 0, 0, 0, RENEW, 0, 0, 0]


def _new_alerts(config: EngineConfig, devices: int, cadence: float, days: float) -> int:
    """New alerts a budget lets through when every reading is above the threshold."""
    policy = Policy(config)
    raised = 0
    steps = int(days * DAY / cadence)
    for step in range(steps):
        t = step * cadence
        for d in range(devices):
            # Risks keep rising, so every reading beats the last period's cutoff and
            # only the token bucket limits new alerts (a tie would pass no cutoff).
            risk = 0.5 + 0.4 * t / (days * DAY) + 1e-6 * d
            action, _ = policy.decide(None, 0, risk, t, dt=cadence if step else 0.0)
            raised += action == RAISE
    return raised


@pytest.mark.parametrize("cadence", [60.0, 3600.0, DAY])
def test_budget_is_per_device_and_time_whatever_the_cadence(cadence: float) -> None:
    # 50 per 1,000 devices a day, 20 devices, 10 days: 10 new alerts.
    config = EngineConfig(alert_budget=50.0, high_mark=0.0, budget_burst=1.0)
    raised = _new_alerts(config, 20, cadence, 10.0)
    assert 9 <= raised <= 10


def test_zero_budget_allows_no_alert_and_none_no_limit() -> None:
    assert _new_alerts(EngineConfig(alert_budget=0.0), 5, 3600.0, 3.0) == 0
    unlimited = EngineConfig(alert_budget=None, high_mark=0.5)
    assert _new_alerts(unlimited, 5, 3600.0, 1.0) == 5 * 24


def test_budget_threshold_tracks_the_top_risks_of_the_last_period() -> None:
    config = EngineConfig(alert_budget=10.0, threshold_smoothing=1.0)
    budget = AlertBudget(config)
    for day in range(3):
        for i in range(1000):
            budget.tick(day * DAY + i, DAY)
            budget.offer(i / 1000.0)
    budget.tick(3 * DAY)
    # 1,000 devices a day at 10 per 1,000 devices a day: the 10th highest risk
    assert abs(budget.threshold() - 0.990) < 1e-9


def test_alert_ids_are_deterministic() -> None:
    assert alert_id("d1", 10.0) == alert_id("d1", 10.0)
    assert alert_id("d1", 10.0) != alert_id("d1", 11.0)
    assert alert_id("d1", 10.0) != alert_id("d2", 10.0)
    assert len(alert_id("d1", 10.0)) == 20


def test_severity_by_odds_ratio() -> None:
    policy = Policy(EngineConfig(alert_budget=None, high_mark=0.2, critical_ratio=4.0))
    assert policy.severity(0.25) == "warning"
    assert policy.severity(0.5) == "critical"  # odds 1 >= 4 * 0.25


def test_budget_periods_only_move_forward_when_partitions_interleave() -> None:
    config = EngineConfig(alert_budget=10.0, threshold_smoothing=1.0)
    ordered, interleaved = AlertBudget(config), AlertBudget(config)
    for day in range(3):
        for i in range(1000):
            ordered.tick(day * DAY + i, DAY)
            ordered.offer(i / 1000.0)
    # Another partition lags one day behind: its readings arrive mixed with today's.
    for day in range(3):
        for i in range(1000):
            interleaved.tick(day * DAY + i, DAY)
            interleaved.offer(i / 1000.0)
            if day and i % 10 == 0:
                interleaved.tick((day - 1) * DAY + i, DAY)
    assert interleaved.period_index == ordered.period_index == 2
    ordered.tick(3 * DAY)
    interleaved.tick(3 * DAY)
    # Day 2 counted its own 1,000 readings plus the 100 late ones from day 1.
    assert interleaved.prev_readings == 1100
    assert ordered.prev_readings == 1000
    assert abs(interleaved.threshold() - ordered.threshold()) < 0.02


def test_a_cutoff_inside_tied_risks_is_not_learnt() -> None:
    # Before the error counters are recognised every device scores alike: a cutoff
    # taken inside that tie would let the first devices of the next day through.
    budget = AlertBudget(EngineConfig(alert_budget=10.0, threshold_smoothing=1.0))
    for i in range(1000):  # 1,000 devices reporting daily: 10 alerts a day
        budget.tick(i, DAY)
        budget.offer(0.0025)
    budget.tick(DAY)
    assert budget.threshold_logit is None
    for i in range(1000):
        budget.tick(DAY + i, DAY)
        budget.offer(0.0025 if i < 900 else 0.5 + i / 10_000)
    budget.tick(2 * DAY)
    assert budget.threshold() == pytest.approx(0.5 + 990 / 10_000)
    policy = Policy(EngineConfig(alert_budget=10.0))
    policy.budget = budget
    assert policy.decide(None, 0, budget.threshold(), 2 * DAY)[0] == 0  # a tie does not pass


def test_first_alert_needs_fresh_evidence_but_its_risk_still_ranks() -> None:
    config = EngineConfig(alert_budget=1000.0, threshold_smoothing=1.0)
    policy = Policy(config)
    assert policy.budget is not None
    policy.budget.set_threshold(0.5)
    # Above the threshold without fresh evidence: no alert, no token spent.
    assert policy.decide(None, 0, 0.9, DAY, dt=DAY, fresh=False) == (0, 0)
    assert policy.budget.tokens == pytest.approx(1.0)
    assert policy.budget._heap == [0.9]  # the risk entered the ranking
    assert policy.decide(None, 0, 0.9, DAY, dt=0.0, fresh=True) == (RAISE, 0)
    # A re-alert of a device already listed does not need it.
    assert policy.decide(None, 0, 0.9, DAY, first=False, fresh=False) == (RAISE, 0)


def test_fresh_ranking_leaves_stale_risks_out_of_the_cutoff() -> None:
    policy = Policy(EngineConfig(alert_budget=1000.0, fresh_ranking=True))
    assert policy.budget is not None
    assert policy.decide(None, 0, 0.9, DAY, dt=DAY, fresh=False) == (0, 0)
    assert policy.budget._heap == []
    policy.decide(None, 0, 0.3, DAY, fresh=True)
    assert policy.budget._heap == [0.3]
