"""Fleet models: the compiled scorer equals River, the registry, the clipped scaler."""

from __future__ import annotations

import math
import pickle
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.engine import FLEET_MODELS, EngineConfig, Trainer
from pipeline.engine.fleet import ClippedScaler, ScoringModel, squash
from pipeline.errors import ConfigError
from schemas import TrainingExample

NAMES = ("a", "a.delta", "b", "anomaly")


def _examples(n: int, seed: int = 0) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.random() < 0.2
        x = {
            "a": rng.expovariate(1.0) * (5.0 if label else 1.0),
            "a.delta": 0.0 if rng.random() < 0.9 else rng.expovariate(0.1),
            "b": rng.gauss(1.0 if label else 0.0, 1.0),
            "anomaly": rng.random(),
            f"type=m{rng.randint(0, 2)}": 1.0,
        }
        out.append((x, label))
    return out


@pytest.mark.parametrize("name", ["logreg", "logreg-sgd", "logreg-unclipped", "pa", "alma"])
def test_compiled_linear_score_equals_river(name: str) -> None:
    trainer = Trainer(EngineConfig(fleet_model=name), "g")
    for x, y in _examples(800):
        trainer.learn_one(x, y)
    model = ScoringModel.compile(trainer.model())
    assert model.weights is not None  # the fast path
    for x, _ in _examples(200, seed=1):
        extra = next(k for k in x if k.startswith("type="))
        p, contributions = model.score(NAMES, [x[k] for k in NAMES], extra, top=3)
        expected = model.snapshot.pipeline.predict_proba_one(x)[True]
        assert math.isclose(p, expected, rel_tol=1e-9, abs_tol=1e-12)
        assert len(contributions) <= 3
        assert contributions == sorted(contributions, reverse=True)
        # Without the one-hot, every feature's contribution plus the intercept is the logit.
        q, every = model.score(NAMES, [x[k] for k in NAMES], None, top=len(NAMES))
        if 1e-12 < q < 1 - 1e-12:
            total = sum(c for c, _, _ in every) + model.intercept
            assert math.isclose(total, math.log(q / (1 - q)), abs_tol=1e-6)


def test_generic_pipeline_scores_and_explains() -> None:
    trainer = Trainer(EngineConfig(fleet_model="bagged-logreg"), "g")
    for x, y in _examples(300):
        trainer.learn_one(x, y)
    model = ScoringModel.compile(trainer.model())
    assert model.weights is None
    p, contributions = model.score(NAMES, [1.0, 0.0, 2.0, 0.5], "type=m1", top=10)
    assert 0.0 <= p <= 1.0
    assert {name for _, name, _ in contributions} == {*NAMES, "type=m1"}
    assert contributions == sorted(contributions, reverse=True)


def test_registry_and_unknown_name() -> None:
    assert "logreg" in FLEET_MODELS
    assert EngineConfig().fleet_model == "expert-logreg"
    with pytest.raises(ConfigError):
        EngineConfig(fleet_model="nope")


def _example(x: dict[str, float], y: bool, t: float) -> TrainingExample:
    return TrainingExample(
        group="g",
        device_id="d",
        ts=datetime.fromtimestamp(t, UTC),
        features=x,
        label=y,
        weight=1.0,
        source="failure" if y else "horizon",
    )


def test_first_model_once_both_classes_seen_then_after_every_epoch_with_examples() -> None:
    trainer = Trainer(EngineConfig(min_positives=3), "g")
    negatives = [_example({"a": 0.0}, False, float(i)) for i in range(50)]
    assert trainer.learn_epoch(0, negatives) is None  # negatives only: no first model
    positives = [_example({"a": 5.0}, True, float(i)) for i in range(2)]
    assert trainer.learn_epoch(1, positives) is None  # two positives of the three needed
    first = trainer.learn_epoch(2, [_example({"a": 5.0}, True, 3.0)])
    assert first is not None
    assert (first.version, first.epoch, first.positives_seen) == (1, 2, 3)
    assert trainer.learn_epoch(3, []) is None  # no new example: no new version
    second = trainer.learn_epoch(5, [_example({"a": 0.0}, False, 9.0)])
    assert second is not None
    assert (second.version, second.epoch, second.examples_seen) == (2, 5, 54)


def test_an_epoch_is_learnt_the_same_whatever_order_it_arrived_in() -> None:
    examples = [_example(x, y, float(i)) for i, (x, y) in enumerate(_examples(60))]
    config = EngineConfig(min_positives=1)
    one, two = Trainer(config, "g"), Trainer(config, "g")
    a = one.learn_epoch(4, sorted(examples, key=lambda e: e.ts))
    b = two.learn_epoch(4, sorted(examples, key=lambda e: e.ts))
    assert a is not None
    assert b is not None
    x = examples[0].features
    assert a.pipeline.predict_proba_one(x) == b.pipeline.predict_proba_one(x)
    other = Trainer(config, "g").learn_epoch(5, sorted(examples, key=lambda e: e.ts))
    assert other is not None  # another epoch shuffles with another seed
    assert other.pipeline.predict_proba_one(x) != a.pipeline.predict_proba_one(x)


def test_snapshot_is_a_copy() -> None:
    trainer = Trainer(EngineConfig(), "g")
    for x, y in _examples(100):
        trainer.learn_one(x, y)
    snapshot = trainer.model()
    before = pickle.dumps(snapshot)
    for x, y in _examples(100, seed=2):
        trainer.learn_one(x, y)
    trainer.model()
    assert pickle.dumps(snapshot) == before


def test_clipped_scaler_passes_one_hots_and_bounds_growth() -> None:
    scaler = ClippedScaler(3.0)
    for i in range(100):
        scaler.learn_one({"x": float(i % 2), "type=a": 1.0})  # type: ignore[no-untyped-call]
    out = scaler.transform_one({"x": 1000.0, "type=a": 1.0})
    assert out["type=a"] == 1.0
    assert 3.0 < out["x"] < 12.0


@given(st.floats(-1e9, 1e9), st.floats(-1e9, 1e9))
def test_squash_is_monotone_and_identity_inside(a: float, b: float) -> None:
    if a <= b:
        assert squash(a, 3.0) <= squash(b, 3.0)
    if abs(a) <= 3.0:
        assert squash(a, 3.0) == a
