"""The scorer, trainer and evaluator on a synthetic fleet: contracts and determinism."""

from __future__ import annotations

import copy
import pickle
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.engine import (
    DeviceState,
    EngineConfig,
    Evaluator,
    FleetModel,
    Scorer,
    Trainer,
)
from pipeline.engine.inprocess import Fed, InProcessEngine
from schemas import Alert, FailureEvent, Feedback, Prediction, Telemetry, TrainingExample

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CONFIG = EngineConfig(
    counter_metrics=("errors",),
    level_only_metrics=("hours",),
    negative_rate=0.2,
    alert_budget=40.0,
    min_positives=3,
)


def fleet(seed: int = 1, devices: int = 60, days: int = 40) -> Iterator[Telemetry | FailureEvent]:
    """Daily readings; every 6th device degrades (errors climb) and fails."""
    rng = random.Random(seed)
    doomed = {f"d{i}": rng.randint(15, days - 1) for i in range(0, devices, 6)}
    errors = dict.fromkeys((f"d{i}" for i in range(devices)), 0.0)
    for day in range(days):
        ts = T0 + timedelta(days=day)
        failing = []
        for i in range(devices):
            device = f"d{i}"
            fail_day = doomed.get(device)
            if fail_day is not None and day > fail_day:
                continue
            if fail_day is not None and fail_day - day < 10:
                errors[device] += rng.randint(1, 20)
            elif rng.random() < 0.01:
                errors[device] += 1
            metrics = {
                "errors": errors[device],
                "temp": 30.0 + rng.gauss(0, 1),
                "hours": 24.0 * (day + 100 * i),
            }
            yield Telemetry(device_id=device, ts=ts, device_type=f"m{i % 2}", metrics=metrics)
            if fail_day == day:
                failing.append(FailureEvent(device_id=device, ts=ts, device_type=f"m{i % 2}"))
        yield from failing


def drive(
    config: EngineConfig, events: Iterator[Telemetry | FailureEvent]
) -> tuple[dict[str, DeviceState], list[Fed], Evaluator, Scorer]:
    engine = InProcessEngine(config)
    steps = []
    evaluator = Evaluator(config.horizon.total_seconds())
    for event in events:
        assert engine.refusal(event) is None
        step = engine.feed(event)
        if isinstance(event, Telemetry):
            evaluator.observe_prediction(step.predictions[0])
        else:
            evaluator.observe_failure(event.device_id, event.ts)
        for alert in step.alerts:
            evaluator.observe_alert(alert)
        steps.append(step)
    return engine.states, steps, evaluator, engine.lanes[0].scorer


@pytest.fixture(scope="module")
def run() -> tuple[dict[str, DeviceState], list[Fed], Evaluator, Scorer]:
    return drive(CONFIG, fleet())


def test_every_reading_gets_exactly_one_prediction(run: tuple) -> None:  # type: ignore[type-arg]
    _, steps, _, _ = run
    readings = sum(1 for e in fleet() if isinstance(e, Telemetry))
    assert sum(len(s.predictions) for s in steps) == readings
    assert all(len(s.predictions) == 1 for s in steps if s.predictions)


def test_engine_built_messages_validate_against_their_schemas(run: tuple) -> None:  # type: ignore[type-arg]
    _, steps, _, _ = run
    kinds: dict[type, int] = {}
    for step in steps:
        for message in (*step.predictions, *step.alerts, *step.examples):
            again = type(message).model_validate_json(message.model_dump_json())
            assert again == message
            kinds[type(message)] = kinds.get(type(message), 0) + 1
    assert {Prediction, Alert, TrainingExample} <= set(kinds)


def test_model_learns_and_alerts_precede_failures(run: tuple) -> None:  # type: ignore[type-arg]
    _, steps, evaluator, _ = run
    report = evaluator.report()
    assert report["roc_auc"] is not None
    assert report["roc_auc"] > 0.7
    assert report["fdr"] >= 0.5
    assert report["median_lead"] is not None
    assert report["median_lead"] >= 1
    assert any(p.model_version > 0 for s in steps for p in s.predictions)
    versions = [p.model_version for s in steps for p in s.predictions if p.group == "m0"]
    assert versions == sorted(versions)


def test_one_open_alert_per_device_and_ids_pair_up(run: tuple) -> None:  # type: ignore[type-arg]
    _, steps, _, _ = run
    open_alerts: dict[str, str] = {}
    for step in steps:
        for alert in step.alerts:
            if alert.action == "raise":
                assert alert.device_id not in open_alerts
                open_alerts[alert.device_id] = alert.alert_id
            else:
                assert open_alerts.pop(alert.device_id) == alert.alert_id


def test_state_pickles_small_and_round_trips(run: tuple) -> None:  # type: ignore[type-arg]
    states, _, _, _ = run
    for state in states.values():
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        assert len(blob) <= 4096
        assert pickle.loads(blob) == state


def test_pickled_state_continues_identically() -> None:
    events = list(fleet(devices=12, days=30))
    half = len(events) // 2
    states, _, _, scorer = drive(CONFIG, iter(events[:half]))
    twin_states = {k: pickle.loads(pickle.dumps(v)) for k, v in states.items()}
    twin = copy.deepcopy(scorer)
    for event in events[half:]:
        if isinstance(event, Telemetry):
            a = scorer.on_telemetry(states.get(event.device_id), event)
            b = twin.on_telemetry(twin_states.get(event.device_id), event)
            assert a.predictions == b.predictions
            assert a.alerts == b.alerts
            assert a.examples == b.examples
            states[event.device_id], twin_states[event.device_id] = a.state, b.state


def test_fleet_model_pickles_before_and_after_learning() -> None:
    trainer = Trainer(CONFIG, "m0")
    empty = trainer.model()
    assert pickle.loads(pickle.dumps(empty)).version == 1
    _, steps, _, _ = drive(CONFIG, fleet(devices=24))
    examples = [e for s in steps for e in s.examples if e.group == "m0"]
    model = trainer.learn_epoch(0, examples)
    assert model is not None
    again = pickle.loads(pickle.dumps(model))
    assert again.version == 2
    assert again.examples_seen == model.examples_seen > 0
    x = next(e.features for s in steps for e in s.examples if e.group == "m0")
    assert again.pipeline.predict_proba_one(x) == model.pipeline.predict_proba_one(x)
    assert len(pickle.dumps(model)) < 64 * 1024


def test_same_seed_same_outputs_and_other_seed_differs() -> None:
    first = drive(CONFIG, fleet())[1]
    second = drive(CONFIG, fleet())[1]
    assert first == second
    other = drive(EngineConfig(**{**CONFIG.__dict__, "seed": 5}), fleet())[1]
    assert [s.examples for s in other] != [s.examples for s in first]


def test_install_ignores_older_versions() -> None:
    scorer = Scorer(CONFIG)
    trainer = Trainer(CONFIG, "m0")
    v1, v2 = trainer.model(), trainer.model()
    scorer.install(v2)
    scorer.install(v1)
    assert scorer.model_version("m0") == 2
    assert isinstance(v1, FleetModel)


def _reading(device: str, day: int, errors: float) -> Telemetry:
    return Telemetry(
        device_id=device,
        ts=T0 + timedelta(days=day),
        device_type="m0",
        metrics={"errors": errors, "temp": 30.0, "hours": 24.0 * day},
    )


def _alerting_scorer() -> tuple[Scorer, DeviceState]:
    config = EngineConfig(
        counter_metrics=("errors",),
        level_only_metrics=("hours",),
        alert_budget=None,
        high_mark=0.5,  # clean counters score the expert's base rate, far below
        anomaly_weight=1.0,
        anomaly_warmup=1,
    )
    scorer = Scorer(config)
    state = None
    for day in range(5):
        state = scorer.on_telemetry(state, _reading("d1", day, 0.0)).state
    step = scorer.on_telemetry(state, _reading("d1", 5, 50.0))
    assert [a.action for a in step.alerts] == ["raise"]
    return scorer, step.state


def test_false_alarm_feedback_clears_and_labels_negative() -> None:
    scorer, state = _alerting_scorer()
    assert state.alert_id is not None
    feedback = Feedback(
        device_id="d1", ts=T0 + timedelta(days=5), alert_id=state.alert_id, verdict="false_alarm"
    )
    step = scorer.on_feedback(state, feedback)
    assert [a.action for a in step.alerts] == ["clear"]
    assert step.state.alert_id is None
    assert step.examples
    assert all(not e.label and e.source == "feedback" for e in step.examples)


def test_repaired_feedback_resets_baseline_and_confirmed_keeps_alert() -> None:
    scorer, state = _alerting_scorer()
    alert = state.alert_id
    assert alert is not None
    kept = scorer.on_feedback(
        state, Feedback(device_id="d1", ts=T0, alert_id=alert, verdict="confirmed")
    )
    assert kept.alerts == []
    assert kept.state.alert_id == alert
    step = scorer.on_feedback(
        kept.state, Feedback(device_id="d1", ts=T0, alert_id=alert, verdict="repaired")
    )
    assert [a.action for a in step.alerts] == ["clear"]
    assert step.state.n == 0
    assert all(e.label for e in step.examples)


def test_failure_closes_alert_and_emits_positives() -> None:
    scorer, state = _alerting_scorer()
    step = scorer.on_failure(state, FailureEvent(device_id="d1", ts=T0 + timedelta(days=5)))
    assert [a.action for a in step.alerts] == ["clear"]
    assert sum(e.label for e in step.examples) == 6
    assert step.state.alert_id is None
    assert step.state.pending == 0


def test_messages_for_unknown_devices_are_handled() -> None:
    scorer = Scorer(CONFIG)
    step = scorer.on_feedback(
        None, Feedback(device_id="new", ts=T0, alert_id="x", verdict="false_alarm")
    )
    assert step.alerts == []
    assert step.examples == []
    assert step.state.device_id == "new"
    step = scorer.on_failure(None, FailureEvent(device_id="new2", ts=T0))
    assert step.examples == []


def test_fresh_evidence_is_a_counter_rise_within_the_window() -> None:
    config = EngineConfig(
        counter_metrics=("errors",),
        level_only_metrics=("hours",),
        fresh_window=timedelta(days=1),
    )
    scorer = Scorer(config)
    state = None
    fresh = []
    for day, errors in enumerate([0.0, 0.0, 3.0, 3.0, 3.0, 8.0]):
        step = scorer.on_telemetry(state, _reading("d1", day, errors))
        state = step.state
        fresh.append(step.fresh)
    # Clean counters are no evidence; a rise stays fresh for one day whatever its size.
    assert fresh == [False, False, True, True, False, True]
    # Without a window (the default) every reading counts as fresh.
    assert Scorer(CONFIG).on_telemetry(None, _reading("d1", 0, 0.0)).fresh


def test_the_demos_twin_raises_exactly_the_backtests_alerts() -> None:
    from pipeline.backtest.driver import run_backtest
    from pipeline.engine.inprocess import alerts_of

    events = list(fleet(seed=3, devices=60, days=40))
    expected = run_backtest(events, CONFIG, partitions=2).alerts
    assert any(alert.action == "raise" for alert in expected)
    assert alerts_of(events, CONFIG, partitions=2) == expected
