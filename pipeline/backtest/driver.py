"""Drive the engine over a dataset in-process, as the streaming layer would.

The :class:`InProcessEngine` holds one lane per input partition (devices placed by
Kafka's default partitioner, ``partitions`` as deployed) and one trainer closing
event-time epochs: the streaming train/serve split without Kafka in between, so the
alerts raised here are the alerts the workers publish for the same input.
"""

from __future__ import annotations

import pickle
import resource
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from pipeline.backtest.variants import BudgetedScore, CounterRules, RuleBaseline
from pipeline.engine import EngineConfig, Evaluator
from pipeline.engine.inprocess import InProcessEngine
from schemas import Alert, FailureEvent, MaintenanceEvent, Telemetry

log = structlog.get_logger(__name__)

MAX_KEPT_ALERTS = 2_000


@dataclass
class Series:
    """Risk over time of one device (for the plot)."""

    t: array[float] = field(default_factory=lambda: array("d"))
    risk: array[float] = field(default_factory=lambda: array("f"))
    anomaly: array[float] = field(default_factory=lambda: array("f"))


@dataclass
class BacktestResult:
    """Everything a report needs from one pass over a dataset."""

    config: EngineConfig
    model: Evaluator
    baseline: Evaluator
    anomaly_only: Evaluator
    rule_any_positive: Evaluator
    """Plain rule: alert on every reading where any error counter is above 0."""
    rule_any_rose: Evaluator
    """Plain rule: alert on every reading where any error counter rose."""
    rule_budgeted: Evaluator
    """The expert score under the model's alert policy and budget."""
    readings: int
    failures: int
    devices: int
    examples: int
    positives: int
    models_published: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    state_bytes: list[int]
    series: dict[str, Series]
    failed_devices: list[str]
    """Devices with a failure event, then those failing only in the ground truth."""
    model_versions: dict[str, int]
    counters: tuple[str, ...] = ()
    """Metrics the engine recognised as error counters by the end of the run."""
    failure_times: dict[str, list[float]] = field(default_factory=dict)
    """POSIX times of each device's failure events."""
    maintenance: int = 0
    """Maintenance events (repairs, replacements) read."""
    rule_counters: tuple[str, ...] = ()
    """Counters of the rule baseline (empty: the recognised error counters)."""
    alerts_allowed: float | None = None
    """New alerts the model's budget allowed over the whole run (``None``: no budget)."""
    raised: list[Alert] = field(default_factory=list)
    """The first ``MAX_KEPT_ALERTS`` alerts raised, with their explanations (for the page)."""
    refused: int = 0
    """Events the time policy refused (``pipeline/engine/timepolicy.py``), as the worker would."""
    partitions: int = 1
    """Input partitions simulated (lanes of partition-local state)."""
    alerts: list[Alert] = field(default_factory=list)
    """Every alert raised or cleared, in order (``alerts.jsonl``)."""


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def run_backtest(
    events: Iterable[Telemetry | FailureEvent | MaintenanceEvent],
    config: EngineConfig,
    *,
    rule_counters: Sequence[str] = (),
    ground_truth: Mapping[str, datetime] | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
    keep_series: Callable[[str], bool] | None = None,
    partitions: int = 1,
) -> BacktestResult:
    """Run every event through the engine and the comparison variants.

    ``rule_counters`` are the counters of the configured rule (``baseline``); empty: the
    error counters the engine recognises. ``partitions``: input partitions to simulate
    (the deployment's ``FOREWARN_TOPIC_PARTITIONS`` to reproduce its workers' alerts).
    """
    horizon_s = config.horizon.total_seconds()
    engine = InProcessEngine(config, partitions)
    model_eval = Evaluator(horizon_s)
    baseline_eval = Evaluator(horizon_s, drift_detection=False)
    anomaly_eval = Evaluator(horizon_s, drift_detection=False)
    positive_eval = Evaluator(horizon_s, drift_detection=False)
    rose_eval = Evaluator(horizon_s, drift_detection=False)
    expert_eval = Evaluator(horizon_s, drift_detection=False)
    evaluators = (model_eval, baseline_eval, anomaly_eval, positive_eval, rose_eval, expert_eval)
    rule = RuleBaseline(rule_counters) if rule_counters else None
    counter_rules = CounterRules()
    anomaly_only = BudgetedScore(config)
    expert_only = BudgetedScore(config)
    series: dict[str, Series] = {}
    failed: list[str] = []
    raised: list[Alert] = []
    failure_times: dict[str, list[float]] = {}
    alerts: list[Alert] = []
    readings = maintenance = 0

    started = time.perf_counter()
    cpu_started = time.process_time()

    def new_life(device_id: str) -> None:
        """A failure or maintenance restarts the device in every comparison variant."""
        if rule is not None:
            rule.reset(device_id)
        counter_rules.reset(device_id)
        anomaly_only.reset(device_id)
        expert_only.reset(device_id)

    for event in events:
        device_id = event.device_id
        reason = engine.refusal(event)
        if reason is not None:
            if engine.refused < 10:
                log.warning("backtest.event_refused", device_id=device_id, reason=reason)
            engine.refused += 1
            continue
        step = engine.feed(event)
        alerts += step.alerts
        if isinstance(event, Telemetry):
            prediction = step.predictions[0]
            t = event.ts.timestamp()
            group = prediction.group
            model_eval.observe_scores(
                device_id,
                group,
                t,
                prediction.risk,
                prediction.failure_probability if prediction.model_version else -1.0,
            )
            for alert in step.alerts:
                model_eval.observe_alert(alert)
                if alert.action == "raise" and len(raised) < MAX_KEPT_ALERTS:
                    raised.append(alert)
            anomaly = prediction.anomaly_score
            anomaly_eval.observe_scores(device_id, group, t, anomaly)
            if anomaly_only.step(device_id, anomaly, t, fresh=step.fresh):
                anomaly_eval.observe_raise(device_id, t)
            expert = step.expert_risk
            expert_eval.observe_scores(device_id, group, t, expert)
            if expert_only.step(device_id, expert, t, fresh=step.fresh):
                expert_eval.observe_raise(device_id, t)
            positive, rose = counter_rules.fires(
                device_id, event.metrics, engine.counters(device_id)
            )
            fired = rule.fires(device_id, event.metrics) if rule is not None else rose
            for evaluator, fires in (
                (baseline_eval, fired),
                (positive_eval, positive),
                (rose_eval, rose),
            ):
                evaluator.observe_scores(device_id, group, t, 1.0 if fires else 0.0)
                if fires:
                    evaluator.observe_raise(device_id, t)
            if keep_series is not None and keep_series(device_id):
                s = series.get(device_id)
                if s is None:
                    s = series[device_id] = Series()
                s.t.append(t)
                s.risk.append(prediction.risk)
                s.anomaly.append(anomaly)
            readings += 1
            if progress is not None and readings % progress_every == 0:
                progress(readings)
        elif isinstance(event, MaintenanceEvent):
            for alert in step.alerts:
                model_eval.observe_alert(alert)
            for evaluator in evaluators:
                evaluator.observe_maintenance(device_id, event.ts)
            new_life(device_id)
            maintenance += 1
        else:
            for alert in step.alerts:
                model_eval.observe_alert(alert)
            for evaluator in evaluators:
                evaluator.observe_failure(device_id, event.ts)
            new_life(device_id)
            failed.append(device_id)
            failure_times.setdefault(device_id, []).append(event.ts.timestamp())
    for alert in engine.finish().alerts:
        alerts.append(alert)
        model_eval.observe_alert(alert)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    if progress is not None:
        progress(readings)
    for evaluator in evaluators:
        evaluator.finish(ground_truth)
    sizes = [
        len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
        for state in engine.states.values()
    ]
    training = engine.training
    log.info(
        "backtest.done", readings=readings, seconds=round(seconds, 2), examples=training.examples
    )
    return BacktestResult(
        config=config,
        model=model_eval,
        baseline=baseline_eval,
        anomaly_only=anomaly_eval,
        rule_any_positive=positive_eval,
        rule_any_rose=rose_eval,
        rule_budgeted=expert_eval,
        readings=readings,
        failures=len(failed),
        devices=len(engine.states),
        examples=training.examples,
        positives=training.positives,
        models_published=engine.published,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        peak_rss_mb=peak_rss_mb(),
        state_bytes=sizes,
        series=series,
        failed_devices=list(dict.fromkeys([*failed, *(ground_truth or {})])),
        model_versions={group: engine.model_version(group) for group in training.trainers},
        counters=engine.all_counters(),
        failure_times=failure_times,
        maintenance=maintenance,
        rule_counters=tuple(rule_counters),
        alerts_allowed=engine.alerts_allowed(),
        raised=raised,
        refused=engine.refused,
        partitions=partitions,
        alerts=alerts,
    )
