"""The scoring side of the engine: readings, failures and verdicts in; steps out."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from pipeline.engine import features, labels
from pipeline.engine._construct import construct, maker
from pipeline.engine.anomaly import anomaly_score
from pipeline.engine.catalogue import Catalogue
from pipeline.engine.config import FLEET_GROUP, EngineConfig
from pipeline.engine.expert import BIAS as EXPERT_BASE
from pipeline.engine.expert import expert_logit
from pipeline.engine.explain import SAMPLE_EVERY, Explained, Explainer
from pipeline.engine.features import Layout, make_layout
from pipeline.engine.fleet import FleetModel, ScoringModel, probability
from pipeline.engine.kinds import KindDetector
from pipeline.engine.policy import CLEAR, RAISE, RENEW, Policy, alert_id
from pipeline.engine.state import MAX_DEVICE_METRICS, DeviceState
from schemas import (
    ALERT_SCHEMA_VERSION,
    Alert,
    Factor,
    FailureEvent,
    Feedback,
    MaintenanceEvent,
    Prediction,
    Telemetry,
    TrainingExample,
)

UNKNOWN_TYPE = "unknown"
PRE_MODEL_KEY = 1e-9
"""Scale of the anomaly score that ranks threshold candidates before a model scores."""
TYPE_PREFIX = "type="

MAX_LAYOUTS = 1024
"""Feature layouts cached per scorer; the cache starts over when full (a layout is
rebuilt from a device's metric names on demand)."""


class Candidate(NamedTuple):
    """A reading that may have raised an alert, kept to re-tune the threshold."""

    risk: float
    seq: int
    group: str
    names: tuple[str, ...]
    vec: list[float]
    extra: str | None


class Candidates:
    """The top risks of the current and the previous budget period, with their features.

    Bounded at ``4 x`` the alerts a period allows (at least 20). When a new model is
    installed the previous period's candidates are re-scored and the raise threshold
    is set to the risk that would have let exactly the period's budget through.
    """

    def __init__(self) -> None:
        self.current: list[Candidate] = []
        self.previous: list[Candidate] = []
        self.seq = 0

    def offer(self, candidate: Candidate, size: int) -> None:
        """Keep ``candidate`` if it is among the ``size`` highest risks of the period."""
        if len(self.current) < size:
            heapq.heappush(self.current, candidate)
        elif candidate.risk > self.current[0].risk:
            heapq.heapreplace(self.current, candidate)

    def roll(self) -> None:
        """A new period starts."""
        self.previous, self.current = self.current, []


class Step(NamedTuple):
    """What one message did: the device's new state and everything to publish."""

    state: DeviceState
    predictions: list[Prediction]
    alerts: list[Alert]
    examples: list[TrainingExample]
    expert_risk: float = 0.0
    """The expert score alone as a probability (the ``rule_budgeted`` baseline's risk)."""
    fresh: bool = True
    """Whether the reading shows fresh evidence (``EngineConfig.fresh_window``); the
    budgeted baselines get the same condition."""


_factor = maker(Factor)
_prediction = maker(Prediction)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Scorer:
    """Fleet-level scoring state held by every scoring worker.

    It keeps the newest fleet model per group, the feature layouts (shared, looked up
    by a device's metric names) and the alert budget of the devices this worker sees.
    Devices' own state is passed in and returned: the caller stores it (a Faust table
    in production, a dict in the backtest).
    """

    _fresh_cut: float | None = None
    _fresh_ranking = False
    """Class defaults: a scorer pickled before ``fresh_window`` existed restores without it."""

    def __init__(self, config: EngineConfig, catalogue: Catalogue | None = None) -> None:
        self.config = config
        self.policy = Policy(config)
        self.explainer = Explainer(catalogue, window_s=config.rise_halflife.total_seconds())
        self._models: dict[str, ScoringModel] = {}
        self._layouts: dict[tuple[str, ...], Layout] = {}
        self._metric_sets: dict[tuple[str, ...], frozenset[str]] = {}
        self._profiling: dict[tuple[str, ...], bool] = {}
        """Per metric tuple: whether some of its metrics' kinds are still undecided."""
        kind_of = dict.fromkeys(config.counter_metrics, features.COUNTER)
        kind_of.update(dict.fromkeys(config.level_only_metrics, features.LEVEL))
        kind_of.update(dict.fromkeys(config.ignored_metrics, features.IGNORED))
        self.kinds = KindDetector(kind_of, config.kind_evidence)
        self._kinds_version = 0
        self._horizon_s = config.horizon.total_seconds()
        self._provisional_s = (
            config.provisional_after.total_seconds() if config.provisional_after else None
        )
        self._ew_halflife_s = config.ew_halflife.total_seconds()
        self._rise_halflife_s = config.rise_halflife.total_seconds()
        self._candidates = Candidates() if self.policy.budget is not None else None
        self._type_features: dict[str, str] = {}
        self._top_factors = config.top_factors
        # Hot-path copies of the configuration (attribute lookups add up per reading).
        self._rate = config.negative_rate
        self._seed = config.seed
        self._warmup = config.anomaly_warmup
        self._baseline = config.baseline_readings
        self._min_positives = config.min_positives
        self._anomaly_weight = config.anomaly_weight
        self._max_pending = config.max_pending
        self._slot_s = config.slot_seconds
        self._period: int | None = None
        fresh_s = config.fresh_window.total_seconds()
        self._fresh_ranking = config.fresh_ranking
        self._fresh_cut = (
            # the ``recent`` feature of a counter that changed exactly ``fresh_s`` ago
            0.5 ** (fresh_s / self._rise_halflife_s)
            if fresh_s > 0.0 and self.policy.budget is not None
            else None
        )

    # -- persistence ----------------------------------------------------------------

    def __getstate__(self) -> dict[str, object]:
        """The partition-local state, without compiled models and caches (a lane's
        changelog record); :meth:`restore_models` puts the models back."""
        state = self.__dict__.copy()
        state["_models"] = {}
        state["_layouts"] = {}
        state["_metric_sets"] = {}
        state["_profiling"] = {}
        state["_kinds_version"] = -1
        state["_restore"] = {group: m.snapshot.version for group, m in self._models.items()}
        return state

    def restore_models(self, models: Iterable[FleetModel]) -> list[str]:
        """After unpickling: install the exact versions that were installed (no re-tune).

        Returns the groups whose version is not among ``models``.
        """
        wanted: dict[str, int] = self.__dict__.pop("_restore", {})
        for model in models:
            if wanted.get(model.group) == model.version:
                self._models[model.group] = ScoringModel.compile(model)
        return sorted(group for group in wanted if group not in self._models)

    # -- models -----------------------------------------------------------------

    def install(self, model: FleetModel) -> None:
        """Use ``model`` for its group unless a newer version is already installed."""
        current = self._models.get(model.group)
        if current is None or model.version > current.snapshot.version:
            self._models[model.group] = ScoringModel.compile(model)
            self._retune()

    def _rescore(self, candidate: Candidate) -> Candidate | None:
        model = self._models.get(candidate.group)
        if model is None or model.snapshot.positives_seen < self.config.min_positives:
            return candidate  # its risk is the expert score's, as when it was offered
        p_model, _ = model.score(candidate.names, candidate.vec, candidate.extra)
        weight = self.config.anomaly_weight
        risk = 1.0 - (1.0 - p_model) * (1.0 - weight * candidate.vec[-2])
        return candidate._replace(risk=risk)

    def _retune(self) -> None:
        """Re-score the last period's candidates with the installed models; reset the threshold."""
        budget = self.policy.budget
        candidates = self._candidates
        if budget is None or candidates is None or not candidates.previous:
            return
        scored = (self._rescore(c) for c in candidates.previous)
        rescored = sorted((c for c in scored if c is not None), reverse=True)
        if not rescored:
            return  # no model scores these devices yet: nothing to tune from
        candidates.previous = list(rescored)
        heapq.heapify(candidates.previous)
        needed = budget.per_period
        if len(rescored) >= needed and rescored[needed - 1].risk > 0.0:
            budget.set_threshold(rescored[needed - 1].risk)

    def model_version(self, group: str) -> int:
        """Version of the model installed for ``group`` (0: none yet)."""
        current = self._models.get(group)
        return current.snapshot.version if current is not None else 0

    # -- devices ------------------------------------------------------------------

    def group_of(self, device_type: str, tags: dict[str, str]) -> str:
        """Model group of a device, from ``config.group_by``."""
        group_by = self.config.group_by
        if group_by == "device_type":
            return device_type
        if group_by == FLEET_GROUP:
            return FLEET_GROUP
        return tags.get(group_by, device_type)

    def layout(self, metrics: tuple[str, ...]) -> Layout:
        """The feature layout for a device's metric names (cached until a kind is decided)."""
        if self.kinds.version != self._kinds_version:
            self._kinds_version = self.kinds.version
            self._layouts.clear()
        layout = self._layouts.get(metrics)
        if layout is None:
            if len(self._layouts) >= MAX_LAYOUTS:
                self._layouts.clear()
                self._metric_sets.clear()
                self._profiling.clear()
            layout = self._layouts[metrics] = make_layout(
                metrics, self.kinds.kind_of, self.kinds.fixed
            )
            self._metric_sets[metrics] = frozenset(metrics)
            self._profiling[metrics] = any(map(self.kinds.undecided, metrics))
        return layout

    def counters(self) -> tuple[str, ...]:
        """Metrics recognised (or configured) as error counters so far."""
        return self.kinds.counters()

    def _profile(self, state: DeviceState, metrics: dict[str, float]) -> None:
        kinds = self.kinds
        position = {name: i for i, name in enumerate(state.metrics)}
        vals = state.vals
        for name, raw in metrics.items():
            if kinds.undecided(name):
                o = position[name] * features.SLOTS
                change = (
                    features.to_log(raw) - vals[o + features.LAST]
                    if vals[o + features.NOBS]
                    else None
                )
                kinds.observe(name, raw, change)

    # -- messages -----------------------------------------------------------------

    def on_telemetry(self, state: DeviceState | None, reading: Telemetry) -> Step:
        """Features, score, exactly one prediction, alert policy, matured labels."""
        t = reading.ts.timestamp()
        if state is None:
            state = DeviceState(
                reading.device_id,
                reading.device_type,
                self.group_of(reading.device_type, reading.tags),
            )
        elif state.n == 0 and state.device_type != reading.device_type:
            state.device_type = reading.device_type
            state.group = self.group_of(reading.device_type, reading.tags)
        matured: list[labels.Labelled] = []
        if state.pend_ts:
            labels.age_out(
                state,
                t,
                horizon_s=self._horizon_s,
                provisional_s=self._provisional_s,
                rate=self._rate,
                seed=self._seed,
                out=matured,
            )
        metrics = reading.metrics
        known = self._metric_sets.get(state.metrics)
        if known is None or not metrics.keys() <= known:
            new = sorted(set(metrics) - set(state.metrics))
            if new:
                if len(state.metrics) + len(new) > MAX_DEVICE_METRICS:
                    state.keep_metrics(set(metrics))
                state.add_metrics(new)
        layout = (
            self._layouts.get(state.metrics) if self.kinds.version == self._kinds_version else None
        ) or self.layout(state.metrics)
        if self._profiling[state.metrics]:
            self._profile(state, metrics)

        since = t - state.last_ts if state.last_ts else 0.0
        n = state.n
        if n:
            dt = t - state.last_ts
            dt = dt if dt > 0.0 else 0.0
            ew_decay = 0.5 ** (dt / self._ew_halflife_s)
            rise_decay = 0.5 ** (dt / self._rise_halflife_s)
        else:
            ew_decay = rise_decay = 1.0
        vec: list[float] = []
        mean_sq_z = features.update(
            state.vals,
            layout,
            metrics,
            t,
            ew_decay=ew_decay,
            rise_decay=rise_decay,
            rise_halflife_s=self._rise_halflife_s,
            baseline_readings=self._baseline,
            out=vec,
        )
        anomaly = anomaly_score(mean_sq_z) if n >= self._warmup else 0.0
        vec.append(anomaly)
        expert = expert_logit(vec, layout.counters)
        vec.append(expert)
        cut = self._fresh_cut
        # Fresh evidence: a counter changed within ``fresh_window`` and rose lately.
        fresh = (
            cut is None
            or not layout.counters
            or any(vec[i + 3] >= cut and vec[i + 1] > 0.0 for i in layout.counters)
        )
        state.n = n + 1
        state.last_ts = t if t > state.last_ts else state.last_ts
        if not n % SAMPLE_EVERY:
            self.explainer.observe(state.device_type, metrics)

        type_feature = self._type_feature(state.device_type)
        expert_probability = probability(expert)
        model = self._models.get(state.group)
        if model is not None and model.snapshot.positives_seen >= self._min_positives:
            p_model, contributions = model.score(layout.names, vec, type_feature, self._top_factors)
            version = model.snapshot.version
            if expert > EXPERT_BASE:
                contributions.append((expert - EXPERT_BASE, features.EXPERT_FEATURE, expert))
                contributions.sort(reverse=True)
        else:
            p_model, version = expert_probability, 0
            contributions = [(expert - EXPERT_BASE, features.EXPERT_FEATURE, expert)]
        weight = self._anomaly_weight
        risk = 1.0 - (1.0 - p_model) * (1.0 - weight * anomaly) if weight else p_model
        if weight and anomaly:
            contributions.append((weight * anomaly, features.ANOMALY_FEATURE, anomaly))
        if contributions:
            if weight and anomaly:
                contributions.sort(reverse=True)
            label = self.explainer.label
            factors = [
                _factor({"feature": name, "value": value, "contribution": c, "label": label(name)})
                for c, name, value in contributions[: self._top_factors]
                if c > 0.0
            ]
        else:
            factors = []
        prediction = _prediction(
            {
                "device_id": state.device_id,
                "device_type": state.device_type,
                "group": state.group,
                "ts": reading.ts,
                "failure_probability": p_model,
                "anomaly_score": anomaly,
                "risk": risk,
                "top_factors": factors,
                "model_version": version,
            },
        )

        eligible = state.alert_id is None and not state.alerted
        alerts: list[Alert] = []
        action, state.streak = self.policy.decide(
            state.alert_ts if state.alert_id is not None else None,
            state.streak,
            risk,
            t,
            first=not state.alerted,
            dt=since,
            fresh=fresh,
        )
        if action == RENEW:
            alerts.append(
                self._alert(state, prediction, "clear", "expired: no failure within the horizon")
            )
        if action in (RAISE, RENEW):
            state.alert_id = alert_id(state.device_id, t)
            state.alert_ts = t
            state.alerted = True
            explained = self.explainer.explain(state, layout, metrics, prediction.top_factors, t)
            alerts.append(
                self._alert(state, prediction, "raise", self._raise_reason(explained), explained)
            )
        elif action == CLEAR:
            reason = (
                "expired: no failure within the horizon"
                if t - state.alert_ts > self._horizon_s
                else "risk fell below the low mark"
            )
            alerts.append(self._alert(state, prediction, "clear", reason))
            state.alert_id = None

        candidates = self._candidates
        budget = self.policy.budget
        if candidates is not None and budget is not None:
            if budget.period_index != self._period:
                if self._period is not None:
                    candidates.roll()
                    self._retune()
                self._period = budget.period_index
            current = candidates.current
            size = 4 * budget.per_period if budget.per_period > 5 else 20
            # Before a group's model scores, candidates are picked by anomaly score (a
            # key far below any model risk), so the first model's install can tune the
            # threshold from real feature vectors at once instead of a period later.
            key = risk if risk > 0.0 else anomaly * PRE_MODEL_KEY
            if (
                eligible
                and (fresh or not self._fresh_ranking)
                and key > 0.0
                and (len(current) < size or key > current[0].risk)
            ):
                candidates.seq += 1
                candidates.offer(
                    Candidate(key, candidates.seq, state.group, layout.names, vec, type_feature),
                    size,
                )
        labels.push(state, t, vec, self._max_pending, slot_s=self._slot_s, seed=self._seed)
        examples = self._examples(state, layout, matured) if matured else []
        return Step(state, [prediction], alerts, examples, expert_probability, fresh)

    def on_failure(self, state: DeviceState | None, event: FailureEvent) -> Step:
        """Label the buffer (positives within the horizon), close the alert, reset."""
        if state is None:
            device_type = event.device_type or UNKNOWN_TYPE
            state = DeviceState(event.device_id, device_type, self.group_of(device_type, {}))
        t = event.ts.timestamp()
        matured: list[labels.Labelled] = []
        labels.on_failure(
            state,
            t,
            horizon_s=self._horizon_s,
            rate=self.config.negative_rate,
            seed=self.config.seed,
            out=matured,
        )
        examples = self._examples(state, self.layout(state.metrics), matured)
        alerts = []
        if state.alert_id is not None:
            alerts.append(self._closing_alert(state, event.ts, "device failed"))
        state.alert_id = None
        state.streak = 0
        state.reset_features()
        return Step(state, [], alerts, examples)

    def on_feedback(self, state: DeviceState | None, feedback: Feedback) -> Step:
        """Apply a technician's verdict on an alert.

        ``false_alarm`` on the open alert clears it and labels the buffered readings
        negative; ``repaired`` clears it, labels them positive (the fault was real;
        without this a successful prediction would erase its own training signal)
        and resets the device's baseline; ``confirmed`` keeps the alert open. A verdict
        on an alert that is no longer open changes nothing but a repair's reset.
        """
        if state is None:
            state = DeviceState(feedback.device_id, UNKNOWN_TYPE, self.group_of(UNKNOWN_TYPE, {}))
        matches = state.alert_id is not None and state.alert_id == feedback.alert_id
        alerts: list[Alert] = []
        matured: list[labels.Labelled] = []
        if feedback.verdict == "false_alarm" and matches:
            alerts.append(self._closing_alert(state, feedback.ts, "false alarm (feedback)"))
            state.alert_id = None
            state.streak = 0
            labels.drain(state, False, matured)
        elif feedback.verdict in ("repaired", "replaced"):
            if matches:
                reason = f"{feedback.verdict} (feedback)"
                alerts.append(self._closing_alert(state, feedback.ts, reason))
                state.alert_id = None
                labels.drain(state, True, matured)
            else:
                labels.clear(state)
            state.reset_features()
        examples = self._examples(state, self.layout(state.metrics), matured) if matured else []
        return Step(state, [], alerts, examples)

    def on_maintenance(self, state: DeviceState | None, event: MaintenanceEvent) -> Step:
        """A repair or replacement from the maintenance log: a new life of the device.

        The open alert closes (``reason``: the kind), buffered readings are dropped
        without a label (nothing says whether they led to a fault), and the baseline and
        watch-list mark are reset. No example is emitted.
        """
        if state is None:
            device_type = event.device_type or UNKNOWN_TYPE
            state = DeviceState(event.device_id, device_type, self.group_of(device_type, {}))
        alerts: list[Alert] = []
        if state.alert_id is not None:
            alerts.append(self._closing_alert(state, event.ts, f"{event.kind} (maintenance)"))
            state.alert_id = None
        labels.clear(state)
        state.reset_features()
        return Step(state, [], alerts, [])

    # -- helpers ------------------------------------------------------------------

    def _type_feature(self, device_type: str) -> str | None:
        if not self.config.type_feature:
            return None
        name = self._type_features.get(device_type)
        if name is None:
            if len(self._type_features) >= MAX_LAYOUTS:
                self._type_features.clear()
            name = self._type_features[device_type] = TYPE_PREFIX + device_type
        return name

    def _examples(
        self, state: DeviceState, layout: Layout, matured: list[labels.Labelled]
    ) -> list[TrainingExample]:
        names = layout.names
        type_feature = self._type_feature(state.device_type)
        examples = []
        width = len(names)
        for item in matured:
            if len(item.features) != width:
                continue  # buffered before a metric's kind was decided: other names
            x = dict(zip(names, item.features, strict=True))
            if type_feature is not None:
                x[type_feature] = 1.0
            examples.append(
                construct(
                    TrainingExample,
                    {
                        "group": state.group,
                        "device_id": state.device_id,
                        "ts": _utc(item.ts),
                        "features": x,
                        "label": item.label,
                        "weight": item.weight,
                        "source": item.source,
                        "emitted_at": None,
                    },
                )
            )
        return examples

    def _raise_reason(self, explained: Explained) -> str:
        top = "; ".join(e.text for e in explained.explanations[:3]) or "risk"
        return f"risk above the learned threshold {self.policy.threshold():.4g}: {top}"

    def _alert(
        self,
        state: DeviceState,
        prediction: Prediction,
        action: str,
        reason: str,
        explained: Explained | None = None,
    ) -> Alert:
        assert state.alert_id is not None
        severity = self.policy.severity(prediction.risk)
        if explained is None or not explained.counters_rose:
            severity = "warning"
        return construct(
            Alert,
            {
                "schema_version": ALERT_SCHEMA_VERSION,
                "alert_id": state.alert_id,
                "action": action,
                "device_id": state.device_id,
                "device_type": state.device_type,
                "group": state.group,
                "ts": prediction.ts,
                "raised_at": _utc(state.alert_ts),
                "severity": severity,
                "risk": prediction.risk,
                "failure_probability": prediction.failure_probability,
                "anomaly_score": prediction.anomaly_score,
                "top_factors": prediction.top_factors,
                "model_version": prediction.model_version,
                "reason": reason,
                "threshold": self.policy.threshold(),
                "explanations": explained.explanations if explained is not None else [],
                "counters_rose": explained.counters_rose if explained is not None else [],
            },
        )

    def _closing_alert(self, state: DeviceState, ts: datetime, reason: str) -> Alert:
        assert state.alert_id is not None
        return construct(
            Alert,
            {
                "schema_version": ALERT_SCHEMA_VERSION,
                "alert_id": state.alert_id,
                "action": "clear",
                "device_id": state.device_id,
                "device_type": state.device_type,
                "group": state.group,
                "ts": ts,
                "raised_at": _utc(state.alert_ts),
                "severity": "warning",
                "risk": 0.0,
                "failure_probability": 0.0,
                "anomaly_score": 0.0,
                "top_factors": [],
                "model_version": self.model_version(state.group),
                "reason": reason,
                "threshold": self.policy.threshold(),
                "explanations": [],
                "counters_rose": [],
            },
        )
