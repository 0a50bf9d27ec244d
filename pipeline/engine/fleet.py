"""Fleet models: a registry of River pipelines, versioned snapshots, fast scoring, training.

One fleet model per model group learns from every group's ``TrainingExample`` (the
train side); scorers hold the newest snapshot of each group and score with it (the
serve side). A snapshot is frozen: the scaler inside it does not learn while scoring.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from river import compose, ensemble, forest, linear_model, optim, preprocessing

from pipeline.engine.features import EXPERT_FEATURE
from schemas import TrainingExample

if TYPE_CHECKING:
    from pipeline.engine.config import EngineConfig

Pipeline = Any
"""A River classifier pipeline (River ships no type information)."""


ONE_HOT_PREFIX = "type="
"""Features with this prefix are one-hot indicators: the fleet scaler passes them through."""

OFFSET_FEATURE = EXPERT_FEATURE
"""The expert score's logit (:mod:`pipeline.engine.expert`): the scaler passes it through
and the ``expert-logreg`` pipeline adds it to its logit with weight 1, never learnt."""

LOGIT_CAP = 15.0
"""Logits beyond ±this grow logarithmically before the sigmoid (see :func:`probability`)."""


class ClippedScaler(preprocessing.StandardScaler):
    """``StandardScaler`` whose output is squashed beyond ``clip``; one-hots pass through.

    Error counters are sparse: nearly every reading has 0, so their standard deviation is
    tiny and a drive with a few reallocated sectors scales to 50 or more. Unbounded, such
    values make SGD jump and the fleet model ranked readings worse than a single raw
    feature (progressive AUC 0.60; 0.85 once bounded, see docs/engine.md). A hard clip
    would tie every extreme drive at the top, exactly where alerts are decided, so values
    beyond ``clip`` grow logarithmically instead: ``clip + log1p(|z| - clip)``, monotone.
    A one-hot seen only as 1 has zero variance and would scale to 0, so it passes as is.
    """

    def __init__(self, clip: float = 3.0) -> None:
        super().__init__()
        self.clip = clip

    def transform_one(self, x: dict[str, float]) -> dict[str, float]:  # type: ignore[override]
        """Standardise, squash beyond ``clip``, and pass one-hot indicators through."""
        means, variances = self.means, self.vars
        out = {}
        for name, value in x.items():
            if name.startswith(ONE_HOT_PREFIX) or name == OFFSET_FEATURE:
                out[name] = value
                continue
            var = variances[name]
            z = (value - means[name]) / math.sqrt(var) if var else 0.0
            out[name] = squash(z, self.clip)
        return out


def squash(z: float, clip: float) -> float:
    """Identity within ``[-clip, clip]``, logarithmic growth beyond (monotone, continuous)."""
    if z > clip:
        return clip + math.log1p(z - clip)
    if z < -clip:
        return -clip - math.log1p(-z - clip)
    return z


class OffsetLogisticRegression(linear_model.LogisticRegression):
    """River's logistic regression on top of a known logit: ``offset + w·x + b``.

    The feature named ``offset`` enters the logit with weight 1 and is never learnt; the
    weights start at 0 and L2 pulls them back to 0, i.e. toward the offset's ranking.
    With no or few labels the model ranks exactly like the offset (the expert score);
    the weights move only as far as the labels push them.
    """

    def __init__(self, offset: str = OFFSET_FEATURE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset = offset
        self._offset_value = 0.0

    def _split(self, x: dict[str, float]) -> dict[str, float]:
        self._offset_value = x.get(self.offset, 0.0)
        return {k: v for k, v in x.items() if k != self.offset}

    def _raw_dot_one(self, x: dict[str, float]) -> float:
        return float(super()._raw_dot_one(x)) + self._offset_value

    def learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> None:  # type: ignore[override]
        """Learn the correction to the offset from one example."""
        super().learn_one(self._split(x), y, w)

    def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:  # type: ignore[override]
        """Probability of the positive class, offset included (logit soft-capped)."""
        p = probability(self._raw_dot_one(self._split(x)))
        return {False: 1.0 - p, True: p}


def _expert_logreg(config: EngineConfig) -> Pipeline:
    lr = config.extra.get("lr", 0.05)
    return compose.Pipeline(
        ClippedScaler(config.extra.get("clip", 3.0)),
        OffsetLogisticRegression(
            optimizer=optim.AdaGrad(lr), l2=config.extra.get("l2", 1e-3), intercept_lr=0.01
        ),
    )


def _logreg(config: EngineConfig) -> Pipeline:
    lr = config.extra.get("lr", 0.1)
    return compose.Pipeline(
        ClippedScaler(config.extra.get("clip", 3.0)),
        linear_model.LogisticRegression(
            optimizer=optim.AdaGrad(lr), l2=config.extra.get("l2", 1e-4), intercept_lr=0.01
        ),
    )


def _logreg_sgd(config: EngineConfig) -> Pipeline:
    lr = config.extra.get("lr", 0.01)
    return compose.Pipeline(
        ClippedScaler(config.extra.get("clip", 3.0)),
        linear_model.LogisticRegression(
            optimizer=optim.SGD(lr), l2=config.extra.get("l2", 1e-4), intercept_lr=lr
        ),
    )


def _logreg_unclipped(config: EngineConfig) -> Pipeline:
    lr = config.extra.get("lr", 0.01)
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(lr), l2=1e-4, intercept_lr=lr),
    )


def _pa(config: EngineConfig) -> Pipeline:
    return compose.Pipeline(
        ClippedScaler(config.extra.get("clip", 3.0)),
        linear_model.PAClassifier(  # type: ignore[no-untyped-call]
            C=config.extra.get("C", 0.01), mode=1
        ),
    )


def _alma(config: EngineConfig) -> Pipeline:
    return compose.Pipeline(
        ClippedScaler(config.extra.get("clip", 3.0)),
        linear_model.ALMAClassifier(),  # type: ignore[no-untyped-call]
    )


def _bagged_logreg(config: EngineConfig) -> Pipeline:
    lr = config.extra.get("lr", 0.1)
    return compose.Pipeline(
        ClippedScaler(config.extra.get("clip", 3.0)),
        ensemble.BaggingClassifier(
            linear_model.LogisticRegression(
                optimizer=optim.AdaGrad(lr), l2=1e-4, intercept_lr=0.01
            ),
            n_models=5,
            seed=config.seed,
        ),
    )


def _amf(config: EngineConfig) -> Pipeline:
    return compose.Pipeline(
        ClippedScaler(config.extra.get("clip", 3.0)),
        forest.AMFClassifier(n_estimators=5, use_aggregation=True, seed=config.seed),
    )


FLEET_MODELS: Mapping[str, Callable[[EngineConfig], Pipeline]] = {
    "expert-logreg": _expert_logreg,
    "logreg": _logreg,
    "logreg-sgd": _logreg_sgd,
    "logreg-unclipped": _logreg_unclipped,
    "pa": _pa,
    "alma": _alma,
    "bagged-logreg": _bagged_logreg,
    "amf": _amf,
}
"""Fleet pipelines by name; ``EngineConfig.fleet_model`` picks one. Linear ones
(StandardScaler then a linear classifier) are scored by a compiled dot product and
explained by weight x scaled value; the others go through ``predict_proba_one`` and are
explained by the features' scaled values (how unusual each is for the fleet)."""


@dataclass
class FleetModel:
    """A published snapshot of one group's fleet model; picklable, never mutated."""

    group: str
    version: int
    pipeline: Pipeline
    examples_seen: int = 0
    positives_seen: int = 0
    epoch: int = -1
    """The newest event-time epoch learnt (``pipeline/engine/schedule.py``)."""


@dataclass
class _Aligned:
    """A linear model's coefficients aligned to one feature layout."""

    weight: list[float]
    mean: list[float]
    inv_sd: list[float]
    offset: int
    """Position of the offset feature in the layout (-1: none)."""


@dataclass
class ScoringModel:
    """A snapshot prepared for scoring: compiled when linear, generic otherwise."""

    snapshot: FleetModel
    weights: dict[str, tuple[float, float, float]] | None
    """Per feature: (mean, 1/std, weight) of the scaler and the linear model."""
    intercept: float
    clip: float
    scaler: Any
    offset: str | None = None
    """Name of the feature added to the logit with weight 1 (``OffsetLogisticRegression``)."""
    _aligned: dict[tuple[str, ...], _Aligned] = field(default_factory=dict)

    @classmethod
    def compile(cls, snapshot: FleetModel) -> ScoringModel:
        """Extract scaler statistics and linear weights when the pipeline allows it."""
        steps = list(snapshot.pipeline.steps.values())
        scaler = steps[0] if isinstance(steps[0], preprocessing.StandardScaler) else None
        clip = scaler.clip if isinstance(scaler, ClippedScaler) else math.inf
        final = steps[-1]
        linear: Mapping[str, float] | None = None
        intercept = 0.0
        if len(steps) == 2 and scaler is not None:
            if isinstance(final, linear_model.LogisticRegression | linear_model.PAClassifier):
                linear, intercept = final.weights, float(final.intercept)
            elif isinstance(final, linear_model.ALMAClassifier):
                linear = final.w
        if linear is None or scaler is None:
            return cls(snapshot, None, 0.0, clip, scaler)
        offset = final.offset if isinstance(final, OffsetLogisticRegression) else None
        weights = {}
        for name, w in linear.items():
            if name.startswith(ONE_HOT_PREFIX) and isinstance(scaler, ClippedScaler):
                weights[name] = (0.0, 1.0, float(w))
                continue
            var = scaler.vars.get(name, 0.0)
            inv_sd = 1.0 / math.sqrt(var) if var else 0.0
            weights[name] = (float(scaler.means.get(name, 0.0)), inv_sd, float(w))
        return cls(snapshot, weights, intercept, clip, scaler, offset)

    def _align(self, names: tuple[str, ...]) -> _Aligned:
        aligned = self._aligned.get(names)
        if aligned is None:
            assert self.weights is not None
            weight, mean, inv_sd = [], [], []
            for name in names:
                mu, inv, w = self.weights.get(name, (0.0, 0.0, 0.0))
                weight.append(w)
                mean.append(mu)
                inv_sd.append(inv)
            offset = names.index(self.offset) if self.offset in names else -1
            aligned = self._aligned[names] = _Aligned(weight, mean, inv_sd, offset)
        return aligned

    def score(
        self, names: tuple[str, ...], vec: Sequence[float], extra: str | None, top: int = 3
    ) -> tuple[float, list[tuple[float, str, float]]]:
        """Probability of failure within the horizon and the ``top`` largest contributions.

        ``extra`` is a one-hot feature name (value 1) added to the layout's features.
        Contributions are ``(contribution, feature, value)``, largest first; for a linear
        model the contribution is weight x scaled value (its share of the logit).
        """
        if self.weights is None:
            p, contributions = self._score_generic(names, vec, extra)
            contributions.sort(reverse=True)
            return p, contributions[:top]
        aligned = self._align(names)
        clip = self.clip
        low = -clip
        zs = [(x - m) * s for x, m, s in zip(vec, aligned.mean, aligned.inv_sd, strict=False)]
        cs = [
            w * (z if low <= z <= clip else squash(z, clip))
            for w, z in zip(aligned.weight, zs, strict=False)
        ]
        logit = self.intercept + sum(cs)
        if aligned.offset >= 0:
            logit += vec[aligned.offset]
        extra_c = 0.0
        if extra is not None:
            mu, inv, w = self.weights.get(extra, (0.0, 0.0, 0.0))
            extra_c = w * (1.0 - mu) * inv
            logit += extra_c
        best = sorted(range(len(cs)), key=cs.__getitem__, reverse=True)[:top]
        contributions = [(cs[i], names[i], vec[i]) for i in best]
        if extra_c > 0.0 and extra is not None:
            contributions.append((extra_c, extra, 1.0))
            contributions.sort(reverse=True)
            del contributions[top:]
        return probability(logit), contributions

    def _score_generic(
        self, names: tuple[str, ...], vec: Sequence[float], extra: str | None
    ) -> tuple[float, list[tuple[float, str, float]]]:
        x = dict(zip(names, vec, strict=True))
        if extra is not None:
            x[extra] = 1.0
        p = float(self.snapshot.pipeline.predict_proba_one(x).get(True, 0.0))
        scaled = self.scaler.transform_one(x) if self.scaler is not None else x
        return p, [(abs(float(scaled[name])), name, value) for name, value in x.items()]


def probability(logit: float) -> float:
    """``sigmoid(logit)`` with the logit soft-capped at ``±LOGIT_CAP`` (see ``squash``).

    In float64 ``sigmoid`` is exactly 1.0 from a logit of about 37 on, and readings that
    far up would all tie at the top of the ranking, exactly where alerts are decided.
    Squashed, a logit of 10^6 maps to about 29: probabilities stay strictly ordered
    and below 1.
    """
    return _sigmoid(squash(logit, LOGIT_CAP))


def _sigmoid(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Trainer:
    """One model group's fleet model: learns whole epochs of examples, publishes snapshots.

    An epoch's examples are learnt together, in an order that depends on nothing but
    their content (sorted by the caller, then shuffled with a generator seeded by group
    and epoch): positives arrive in bursts (every buffered reading of a device when it
    fails) and plain SGD would take them as a run of same-label steps. After an epoch
    with new examples a version is due, the first one only once ``min_positives``
    examples of each class have been learnt. Nothing depends on the wall clock or on
    the order in which examples reached the trainer.
    """

    def __init__(self, config: EngineConfig, group: str) -> None:
        self.config = config
        self.group = group
        self.pipeline: Pipeline = FLEET_MODELS[config.fleet_model](config)
        self.version = 0
        self.epoch = -1
        self.examples_seen = 0
        self.positives_seen = 0
        self._since_publish = 0

    def learn_epoch(self, epoch: int, examples: Sequence[TrainingExample]) -> FleetModel | None:
        """Learn epoch ``epoch``'s examples (canonically ordered); return the new version
        if one is due, else ``None``."""
        weighted = self.config.weighted_negatives
        # Example weights count the readings a buffered entry stands for, divided by the
        # negative rate; learnt as is only with ``weighted_negatives`` (see docs/engine.md).
        batch = [(e.features, e.label, e.weight if weighted else 1.0) for e in examples]
        random.Random(f"{self.config.seed}|{self.group}|{epoch}").shuffle(batch)
        learn = self.pipeline.learn_one
        for x, y, w in batch:
            learn(x, y, w=w)
            self.positives_seen += int(y)
        self.examples_seen += len(batch)
        self._since_publish += len(batch)
        self.epoch = epoch
        return self.model() if self.due() else None

    def learn_one(self, x: dict[str, float], y: bool, w: float = 1.0) -> None:
        """River-style: learn one feature dict with its label and weight at once."""
        self.pipeline.learn_one(x, y, w=w)
        self.examples_seen += 1
        self.positives_seen += int(y)
        self._since_publish += 1

    @property
    def negatives_seen(self) -> int:
        """Negative examples learnt so far."""
        return self.examples_seen - self.positives_seen

    def due(self) -> bool:
        """True when a new snapshot should be published (see the class doc)."""
        if not self._since_publish:
            return False
        if self.version == 0:
            need = self.config.min_positives
            return self.positives_seen >= need and self.negatives_seen >= need
        return True

    def resume(self, model: FleetModel) -> None:
        """Continue from a published snapshot (a restarted trainer)."""
        self.pipeline = copy.deepcopy(model.pipeline)
        self.version = model.version
        self.epoch = model.epoch
        self.examples_seen = model.examples_seen
        self.positives_seen = model.positives_seen
        self._since_publish = 0

    def model(self) -> FleetModel:
        """Publish a new version: a deep copy of the pipeline (copy-on-publish)."""
        self.version += 1
        self._since_publish = 0
        return FleetModel(
            group=self.group,
            version=self.version,
            pipeline=copy.deepcopy(self.pipeline),
            examples_seen=self.examples_seen,
            positives_seen=self.positives_seen,
            epoch=self.epoch,
        )
