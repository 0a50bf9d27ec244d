"""What the engine knows before it learns: metric kinds, the expert score, untied scores."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from pipeline.engine import DeviceState, EngineConfig, Scorer, Trainer
from pipeline.engine.expert import BIAS, expert_logit
from pipeline.engine.features import COUNTER, GAUGE, IGNORED, LEVEL, make_layout
from pipeline.engine.fleet import LOGIT_CAP, ScoringModel, probability
from pipeline.engine.kinds import KindDetector
from schemas import Telemetry

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _detect(series: dict[str, list[list[float]]], evidence: int = 200) -> dict[str, int]:
    """Feed per-device value sequences of each metric; return the decided kinds."""
    kinds = KindDetector({}, evidence)
    for name, devices in series.items():
        for values in devices:
            previous = None
            for value in values:
                kinds.observe(name, value, None if previous is None else value - previous)
                previous = value
    return kinds.kind_of


def test_kinds_are_recognised_from_the_data() -> None:
    rng = random.Random(0)
    devices = range(40)
    # pending sectors: mostly zero, rare rises and an occasional fall (remapped)
    pending = [[0.0] * 10 for _ in devices]
    pending[3] = [0, 0, 2, 2, 5, 5, 1, 1, 1, 1]
    temperature = [[float(rng.randint(25, 40)) for _ in range(10)] for _ in devices]
    hours = [[24.0 * (i + 100 * d) for i in range(10)] for d in devices]
    capacity = [[4e12] * 10 for _ in devices]
    rate = [[rng.random() * 10 for _ in range(10)] for _ in devices]
    kinds = _detect(
        {
            "pending": [[float(v) for v in p] for p in pending],
            "temperature": temperature,
            "hours": hours,
            "capacity": capacity,
            "rate": rate,
        }
    )
    assert kinds == {
        "pending": COUNTER,
        "temperature": GAUGE,
        "hours": LEVEL,
        "capacity": IGNORED,
        "rate": GAUGE,
    }


def test_configured_kinds_win_and_undecided_metrics_are_gauges() -> None:
    scorer = Scorer(EngineConfig(level_only_metrics=("hours",), kind_evidence=5))
    assert scorer.kinds.kind_of == {"hours": LEVEL}
    layout = scorer.layout(("errors", "hours"))
    assert layout.kinds == (GAUGE, LEVEL)  # "errors" not decided yet
    states: dict[str, DeviceState] = {}
    for day in range(3):
        for d in range(4):
            step = scorer.on_telemetry(
                states.get(f"d{d}"),
                Telemetry(
                    device_id=f"d{d}",
                    ts=T0 + timedelta(days=day),
                    device_type="m",
                    metrics={"errors": 0.0, "hours": 24.0 * day},
                ),
            )
            states[f"d{d}"] = step.state
    assert scorer.counters() == ("errors",)
    assert scorer.layout(("errors", "hours")).kinds == (COUNTER, LEVEL)


def test_expert_score_ranks_rises_over_old_damage_over_clean() -> None:
    layout = make_layout(("a", "b"), {"a": COUNTER, "b": COUNTER})
    clean = [0.0, 0.0, 0.0, 0.0] * 2
    old = [math.log1p(50.0), 0.0, 0.0, 0.0] + [0.0] * 4
    rising = [math.log1p(8.0), math.log1p(8.0), math.log1p(8.0), 1.0] + [0.0] * 4
    both = rising[:4] * 2
    scores = [expert_logit(v, layout.counters) for v in (clean, old, rising, both)]
    assert scores[0] == BIAS
    assert scores == sorted(scores)
    assert len(set(scores)) == 4


def test_probabilities_never_saturate_at_the_top() -> None:
    logits = [10.0, 20.0, 37.0, 40.0, 50.0, 1e3, 1e6]
    ps = [probability(z) for z in logits]
    assert all(p < 1.0 for p in ps)
    assert ps == sorted(ps)
    assert len(set(ps)) == len(ps)  # strictly ordered
    assert probability(LOGIT_CAP) == 1.0 / (1.0 + math.exp(-LOGIT_CAP))
    assert probability(-1e6) > 0.0


def test_scores_of_extreme_devices_stay_strictly_ordered() -> None:
    # Two drives whose counters explode by different amounts: both far beyond where a
    # plain sigmoid returns exactly 1.0, yet their risks differ and are below 1.
    scorer = Scorer(EngineConfig(counter_metrics=("errors",)))
    risks = []
    for device, jump in (("a", 1e6), ("b", 1e9)):
        state = None
        for day, value in enumerate((0.0, jump)):
            step = scorer.on_telemetry(
                state,
                Telemetry(
                    device_id=device,
                    ts=T0 + timedelta(days=day),
                    device_type="m",
                    metrics={"errors": value},
                ),
            )
            state = step.state
        risks.append(step.predictions[0].risk)
    assert risks[0] < risks[1] < 1.0


def _examples(n: int, seed: int) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.random() < 0.3
        out.append(
            (
                {
                    "a": rng.gauss(1.0 if label else 0.0, 1.0),
                    "b": rng.random(),
                    "expert": rng.gauss(-2.0 if label else -5.0, 2.0),
                    "type=m0": 1.0,
                },
                label,
            )
        )
    return out


def test_untrained_model_ranks_exactly_like_the_expert() -> None:
    trainer = Trainer(EngineConfig(), "g")
    model = ScoringModel.compile(trainer.model())
    names = ("a", "b", "anomaly", "expert")
    for x, _ in _examples(50, seed=2):
        p, _ = model.score(names, [x["a"], x["b"], 0.0, x["expert"]], "type=m0")
        assert p == probability(x["expert"])


def test_offset_model_compiles_to_river_and_learns_a_correction() -> None:
    trainer = Trainer(EngineConfig(), "g")
    for x, y in _examples(2000, seed=0):
        trainer.learn_one(x, y)
    snapshot = trainer.model()
    final = list(snapshot.pipeline.steps.values())[-1]
    assert "expert" not in final.weights  # the offset is never learnt
    assert final.weights["a"] > 0.0  # the signal the expert does not see
    model = ScoringModel.compile(snapshot)
    names = ("a", "b", "anomaly", "expert")
    for x, _ in _examples(100, seed=1):
        p, _ = model.score(names, [x["a"], x["b"], 0.0, x["expert"]], "type=m0")
        expected = snapshot.pipeline.predict_proba_one({**x, "anomaly": 0.0})[True]
        assert math.isclose(p, expected, rel_tol=1e-9, abs_tol=1e-12)


def test_an_alert_after_kinds_are_decided_explains_without_the_old_layout() -> None:
    # Readings buffered while the kinds were undecided have another layout: the
    # explainer must not read their slots by the new names (a gauge's huge z-score read
    # as a level overflowed expm1 and crashed the worker's agent).
    scorer = Scorer(EngineConfig(kind_evidence=2, alert_budget=None, high_mark=0.5))
    states: dict[str, DeviceState] = {}
    days = ((0.0, 1.5), (0.0, 1e300), (0.0, 1e300), (0.0, 1e300), (1e6, 1e300))
    raised = []
    for day, (errors, x) in enumerate(days):
        for device in ("d0", "d1"):
            step = scorer.on_telemetry(
                states.get(device),
                Telemetry(
                    device_id=device,
                    ts=T0 + timedelta(days=day),
                    device_type="m",
                    metrics={"errors": errors if device == "d0" else 0.0, "x": x},
                ),
            )
            states[device] = step.state
            raised += [a for a in step.alerts if a.action == "raise"]
    assert scorer.counters() == ("errors",)
    assert [a.device_id for a in raised] == ["d0"]


def test_anomaly_does_not_depend_on_when_kinds_are_decided() -> None:
    # Workers decide kinds at different points of their input (and again after a
    # restart): a device's state and anomaly score must not notice.
    rng = random.Random(3)
    readings = [
        Telemetry(
            device_id=f"d{d}",
            ts=T0 + timedelta(days=day),
            device_type="m",
            metrics={
                "errors": float(day // 5 if d == 0 else 0),
                "hours": 24.0 * (day + 50 * d),
                "temp": float(rng.randint(25, 40)),
                "capacity": 4e12,
            },
        )
        for day in range(12)
        for d in range(6)
    ]
    scores = []
    for evidence in (3, 10**9):
        scorer = Scorer(EngineConfig(kind_evidence=evidence))
        states: dict[str, DeviceState] = {}
        out = []
        for reading in readings:
            step = scorer.on_telemetry(states.get(reading.device_id), reading)
            states[reading.device_id] = step.state
            out.append(step.predictions[0].anomaly_score)
        scores.append(out)
    assert scores[0] == scores[1]
    assert max(scores[0]) > 0.0
