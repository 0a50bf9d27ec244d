"""Re-alerting within a device's life (``EngineConfig.realert``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.backtest.variants import BudgetedScore
from pipeline.engine import EngineConfig, Evaluator, Scorer
from pipeline.engine.policy import CLEAR, RAISE, RENEW, Policy
from pipeline.errors import ConfigError
from schemas import Telemetry

DAY = 86400.0
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _run(policy: Policy, risks: list[float]) -> list[int]:
    """Drive the policy like the scorer does: open alert, streak, ever-alerted mark."""
    raised_at: float | None = None
    streak = 0
    alerted = False
    actions = []
    for i, risk in enumerate(risks):
        t = i * DAY
        action, streak = policy.decide(raised_at, streak, risk, t, first=not alerted, dt=DAY)
        if action in (RAISE, RENEW):
            raised_at, alerted = t, True
        elif action == CLEAR:
            raised_at = None
        actions.append(action)
    return actions


def _policy(realert: str, **kwargs: object) -> Policy:
    return Policy(
        EngineConfig(
            alert_budget=None,
            high_mark=0.5,
            horizon=timedelta(days=3),
            realert=realert,
            **kwargs,  # type: ignore[arg-type]
        )
    )


# Risks: raise, stay high past the 3-day horizon, fall below the low mark (odds < 0.5,
# i.e. risk < 1/3), rise again.
RISKS = [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9]


def test_after_clear_raises_again_on_the_reading_after_a_clear_never_while_open() -> None:
    actions = _run(_policy("after_clear"), RISKS)
    assert actions == [RAISE, 0, 0, 0, CLEAR, RAISE, CLEAR, RAISE, 0]


def test_renew_re_raises_on_the_expiring_reading_when_still_above() -> None:
    actions = _run(_policy("renew"), RISKS)
    assert EngineConfig().realert == "renew"  # the default
    assert actions == [RAISE, 0, 0, 0, RENEW, 0, CLEAR, RAISE, 0]
    # At expiry, between the low mark and the threshold: it only clears.
    assert _run(_policy("renew"), [0.9, 0.9, 0.9, 0.9, 0.45, 0.9]) == [
        RAISE,
        0,
        0,
        0,
        CLEAR,
        RAISE,
    ]


def test_never_allows_one_alert_per_life() -> None:
    assert _run(_policy("never"), RISKS) == [RAISE, 0, 0, 0, CLEAR, 0, 0, 0, 0]


def test_re_alerts_need_the_streak_like_new_alerts() -> None:
    actions = _run(_policy("after_clear", alert_k=2), [0.9, 0.9, 0.2, 0.9, 0.9])
    assert actions == [0, RAISE, CLEAR, 0, RAISE]


def test_a_re_alert_spends_no_token_a_new_device_does() -> None:
    policy = Policy(EngineConfig(alert_budget=1.0, realert="after_clear"))
    budget = policy.budget
    assert budget is not None
    budget.tick(0.0)
    budget.set_threshold(0.5)
    budget.tokens = 1.0
    assert policy.decide(None, 0, 0.9, 1.0, first=True)[0] == RAISE
    assert budget.tokens == 0.0
    assert policy.decide(1.0, 0, 0.1, 2.0)[0] == CLEAR  # below the low mark
    # The listed device raises again with no token left; a new device cannot.
    assert policy.decide(None, 0, 0.9, 3.0, first=False)[0] == RAISE
    assert budget.tokens == 0.0
    assert policy.decide(None, 0, 0.9, 3.0, first=True)[0] == 0


def test_unknown_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="realert"):
        EngineConfig(realert="always")


def test_budgeted_baseline_counts_a_renewal_as_a_raise() -> None:
    score = BudgetedScore(
        EngineConfig(alert_budget=None, high_mark=0.5, realert="renew", horizon=timedelta(days=3))
    )
    raised = [score.step("d", risk, i * DAY) for i, risk in enumerate(RISKS)]
    assert raised == [True, False, False, False, True, False, False, True, False]


def _reading(day: int, errors: float) -> Telemetry:
    return Telemetry(
        device_id="d1",
        ts=T0 + timedelta(days=day),
        device_type="m0",
        metrics={"errors": errors, "temp": 30.0, "hours": 24.0 * day},
    )


@pytest.mark.parametrize(("realert", "expected"), [("renew", 2), ("after_clear", 1)])
def test_scorer_renewal_clears_then_raises_a_fresh_alert(realert: str, expected: int) -> None:
    config = EngineConfig(
        counter_metrics=("errors",),
        level_only_metrics=("hours",),
        alert_budget=None,
        high_mark=0.5,
        anomaly_weight=1.0,
        anomaly_warmup=1,
        horizon=timedelta(days=3),
        realert=realert,
    )
    scorer = Scorer(config)
    state = None
    actions: list[list[str]] = []
    ids: list[str] = []
    for day in range(10):
        errors = 0.0 if day < 5 else 50.0 * 2 ** (day - 5)  # keeps rising: risk stays high
        step = scorer.on_telemetry(state, _reading(day, errors))
        state = step.state
        actions.append([a.action for a in step.alerts])
        ids.extend(a.alert_id for a in step.alerts if a.action == "raise")
    assert actions[5] == ["raise"]
    # Day 9 is the first reading more than 3 days after the raise on day 5.
    assert actions[9] == (["clear", "raise"] if realert == "renew" else ["clear"])
    assert len(set(ids)) == expected


def test_evaluator_counts_a_re_alert_in_the_window_and_a_healthy_device_once() -> None:
    ev = Evaluator(horizon_s=5 * DAY)
    for day in range(30):
        t = (T0 + timedelta(days=day)).timestamp()
        ev.observe_scores("failing", "g", t, 0.1)
        ev.observe_scores("healthy", "g", t, 0.1)
        ev.observe_scores("quiet", "g", t, 0.1)
        if day in (2, 17):  # too early, then again 3 days before the failure
            ev.observe_raise("failing", t)
        if day in (1, 10, 20):
            ev.observe_raise("healthy", t)
    ev.observe_failure("failing", T0 + timedelta(days=20))
    figures = ev.report(DAY)
    assert figures["detected"] == 1
    assert figures["leads"] == [3.0]
    assert figures["far"] == pytest.approx(1 / 2)  # one of two never-failing devices
    assert figures["alerts"] == 5
