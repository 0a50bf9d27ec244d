"""The backtest report: ``report.json`` and the short human summary."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeline.backtest.driver import BacktestResult
from pipeline.datasets import Dataset
from pipeline.engine import EngineConfig
from schemas import Alert

VARIANTS = (
    "model",
    "rule_budgeted",
    "rule_any_rose",
    "rule_any_positive",
    "baseline",
    "anomaly_only",
)
"""Report keys of the online variants, in the order the summary prints them."""

TIMING_FIELDS = ("seconds", "readings_per_second", "cpu_seconds", "peak_rss_mb")
"""Report fields that vary from run to run; everything else is deterministic."""

SWEEP_THRESHOLDS = tuple(
    sorted({round(1.0 / (1.0 + math.exp(-x / 20.0)), 9) for x in range(-400, 401)})
)
"""Post-run sweep thresholds: logits -20 .. 20 in steps of 0.05."""


def config_dict(config: EngineConfig) -> dict[str, Any]:
    """The engine configuration as JSON-ready values (durations in seconds)."""
    out: dict[str, Any] = {}
    for item in fields(config):
        value = getattr(config, item.name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, tuple):
            value = list(value)
        out[item.name] = value
    return out


def _variant(figures: Mapping[str, Any], *, groups: bool) -> dict[str, Any]:
    out = {k: v for k, v in figures.items() if k not in ("groups", "leads", "first_alert_leads")}
    failed = figures["failed"]
    ahead = sum(1 for lead in figures["leads"] if lead >= 1.0)
    # FDR counting only detections at least one time unit ahead of the failure.
    out["fdr_lead_1"] = ahead / failed if failed else None
    if groups:
        out["groups"] = {
            name: {k: v for k, v in group.items() if k not in ("leads", "first_alert_leads")}
            for name, group in figures.get("groups", {}).items()
        }
    return out


def best_fdr_at(sweep: list[dict[str, float]], far_limit: float) -> float | None:
    """Highest FDR of the post-run sweep with FAR at or below ``far_limit``."""
    candidates = [point["fdr"] for point in sweep if point["far"] <= far_limit]
    return max(candidates) if candidates else None


def _cmapss(result: BacktestResult, unit: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        prefix = f"{split}-"
        figures = result.model.report(unit, devices=lambda d: d.startswith(prefix))  # noqa: B023
        leads = figures["first_alert_leads"]
        out[split] = {
            "engines": figures["devices"],
            "failed_engines": figures["failed"],
            "reachable_within_horizon": figures["reachable"],
            "flagged_within_horizon": figures["detected"],
            "fdr": figures["fdr"],
            "median_lead_cycles": figures["median_lead"],
            "median_first_alert_cycles_before_failure": statistics.median(leads) if leads else None,
            "false_alarms_before_horizon": figures["early_alerts"],
            "engines_never_flagged": figures["failed"] - len(leads),
        }
    return out


def dataset_report(result: BacktestResult, dataset: Dataset) -> dict[str, Any]:
    """:func:`build_report` for a run over ``dataset``, named and timed by the dataset."""
    return build_report(
        result,
        dataset=dataset.name,
        fmt=dataset.format,
        time_unit=dataset.time_unit,
        time_unit_seconds=dataset.time_unit_seconds,
        warnings=dataset.warnings,
    )


NO_MODEL = "no model yet"


def _period(seconds: float) -> str:
    for name, size in (("week", 604_800.0), ("day", 86_400.0), ("hour", 3_600.0), ("minute", 60.0)):
        if seconds == size:
            return name
    return f"{seconds:g} s"


def run_warnings(result: BacktestResult, reader_warnings: Sequence[str] = ()) -> list[str]:
    """One line per condition that makes the run's figures meaningless or misleading."""
    config = result.config
    out = list(reader_warnings)
    if result.models_published == 0:
        out.append(
            f"no model trained: a group's first model needs {config.min_positives} positive "
            f"and {config.min_positives} negative examples; the run produced "
            f"{result.positives} positive of {result.examples} examples, so the model "
            "variant scored with the expert score alone"
        )
    if not result.rule_counters and not result.counters:
        out.append(
            "rule baseline inactive: no error counter recognised in the data or given, so "
            "the rules never fire and the expert score is flat (give --counter-metrics or "
            "--rule-counters)"
        )
    if result.alerts_allowed is not None and result.alerts_allowed < 1.0:
        out.append(
            f"alert budget {config.alert_budget:g} per 1,000 devices per "
            f"{_period(config.budget_period.total_seconds())} allowed "
            f"{result.alerts_allowed:.2f} new alerts over the whole run, fewer than one "
            "(raise --alert-budget, or --alert-budget none for no budget)"
        )
    if not result.failed_devices:
        out.append("no failures in the data: FDR and lead time cannot be measured")
    return out


def build_report(
    result: BacktestResult,
    *,
    dataset: str,
    fmt: str,
    time_unit: str,
    time_unit_seconds: float,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """Everything ``report.json`` holds (timing fields are listed in ``TIMING_FIELDS``).

    ``warnings`` are the reader's; the run's own (:func:`run_warnings`) are added.
    """
    unit = time_unit_seconds
    model = result.model.report(unit)
    model["status"] = "trained" if result.models_published else NO_MODEL
    sweep = result.model.sweep(SWEEP_THRESHOLDS)
    expert_sweep = result.rule_budgeted.sweep(SWEEP_THRESHOLDS)
    sizes = sorted(result.state_bytes) or [0]
    report: dict[str, Any] = {
        "dataset": dataset,
        "format": fmt,
        "time_unit": time_unit,
        "time_unit_seconds": time_unit_seconds,
        "readings": result.readings,
        "devices": result.devices,
        "failures": result.failures,
        "maintenance_events": result.maintenance,
        "warnings": run_warnings(result, warnings),
        "alerts_allowed": (
            None if result.alerts_allowed is None else round(result.alerts_allowed, 3)
        ),
        "devices_detail": result.model.details(unit),
        "model": _variant(model, groups=True),
        "baseline": _variant(result.baseline.report(unit), groups=False),
        "anomaly_only": _variant(result.anomaly_only.report(unit), groups=False),
        "rule_any_positive": _variant(result.rule_any_positive.report(unit), groups=False),
        "rule_any_rose": _variant(result.rule_any_rose.report(unit), groups=False),
        "rule_budgeted": _variant(result.rule_budgeted.report(unit), groups=False),
        "error_counters": list(result.counters),
        "post_run_sweep": {
            "note": "one threshold over the whole run, chosen after it, no budget; not a headline",
            "fdr_at_far_0.5pct": best_fdr_at(sweep, 0.005),
            "fdr_at_far_1pct": best_fdr_at(sweep, 0.01),
            "fdr_at_far_2pct": best_fdr_at(sweep, 0.02),
            "rule_budgeted_fdr_at_far_0.5pct": best_fdr_at(expert_sweep, 0.005),
            "rule_budgeted_fdr_at_far_1pct": best_fdr_at(expert_sweep, 0.01),
            "rule_budgeted_fdr_at_far_2pct": best_fdr_at(expert_sweep, 0.02),
        },
        "drift_events": result.model.drift_events[:100],
        "training": {
            "examples": result.examples,
            "positives": result.positives,
            "models_published": result.models_published,
            "model_versions": dict(sorted(result.model_versions.items())),
        },
        "state_bytes_per_device": {
            "mean": round(statistics.fmean(sizes), 1),
            "p99": sizes[min(len(sizes) - 1, int(0.99 * len(sizes)))],
            "max": sizes[-1],
        },
        "seconds": round(result.seconds, 3),
        "cpu_seconds": round(result.cpu_seconds, 3),
        "readings_per_second": round(result.readings / result.seconds) if result.seconds else None,
        "peak_rss_mb": round(result.peak_rss_mb, 1),
        "seed": result.config.seed,
        "config": config_dict(result.config),
        "timing_fields": list(TIMING_FIELDS),
    }
    if fmt == "cmapss":
        report["cmapss"] = _cmapss(result, unit)
        report["cmapss"]["note"] = "C-MAPSS is a simulation (NASA), not field data"
    return report


def strip_timing(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report without the fields that vary between identical runs."""
    return {k: v for k, v in report.items() if k not in TIMING_FIELDS}


def write_report(report: Mapping[str, Any], path: Path) -> None:
    """Write ``report.json`` (sorted keys, so identical runs give identical files)."""
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def write_alerts(alerts: Iterable[Alert], path: Path) -> None:
    """Write ``alerts.jsonl``: one ``Alert`` per line, the JSON the worker publishes."""
    with path.open("w") as out:
        for alert in alerts:
            out.write(alert.model_dump_json() + "\n")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary(report: Mapping[str, Any]) -> str:
    """A few lines for a person: model against the rule baseline and anomaly-only."""
    unit = report["time_unit"]
    lines = [
        f"{report['dataset']}: {report['readings']:,} readings, {report['devices']:,} devices, "
        f"{report['failures']} failures (horizon "
        f"{report['config']['horizon'] / report['time_unit_seconds']:g} {unit})",
        f"{'variant':<18}{'FDR':>9}{'FAR':>9}{'median lead':>14}{'alerts':>9}{'false alerts':>14}",
    ]
    for name in VARIANTS:
        v = report[name]
        if v.get("status") == NO_MODEL:
            lines.append(f"{name:<18}{NO_MODEL:>18}")
            continue
        lines.append(
            f"{name:<18}{_pct(v['fdr']):>9}{_pct(v['far']):>9}"
            f"{_num(v['median_lead']) + ' ' + unit:>14}{v['alerts']:>9,}"
            f"{v.get('false_alerts', 0):>14,}"
        )
    sweep = report["post_run_sweep"]
    horizon = report["config"]["horizon"] / report["time_unit_seconds"]
    lines.append(
        f"FDR = failures alerted 0-{horizon:g} {unit} ahead / failures; "
        f"FAR = never-failed devices alerted / never-failed devices"
    )
    lines.append(
        f"error counters: {', '.join(report['error_counters']) or 'none recognised'}; "
        f"rule_budgeted = expert score under the model's policy and budget"
    )
    if report["model"].get("status") != NO_MODEL:
        lines.append(
            f"model ROC AUC over readings {_num(report['model']['roc_auc'], 3)}; post-run "
            f"sweep (one threshold chosen after the run): FDR "
            f"{_pct(sweep['fdr_at_far_0.5pct'])} at FAR <= 0.5 %, "
            f"{_pct(sweep['fdr_at_far_1pct'])} at <= 1 %"
        )
    if "cmapss" in report:
        for split in ("train", "test"):
            c = report["cmapss"][split]
            if not c["engines"]:
                continue  # that file was not given
            lines.append(
                f"C-MAPSS {split} (simulation): {c['flagged_within_horizon']}/"
                f"{c['failed_engines']} engines flagged within the horizon "
                f"({c['reachable_within_horizon']} had readings in it), median "
                f"{_num(c['median_lead_cycles'])} cycles before failure, "
                f"{c['false_alarms_before_horizon']} "
                f"alarm{'' if c['false_alarms_before_horizon'] == 1 else 's'} "
                "earlier than the horizon"
            )
    lines.append(
        f"{report['readings_per_second'] or 0:,} readings/s, peak RSS "
        f"{report['peak_rss_mb']:.0f} MB, state {report['state_bytes_per_device']['max']:,} "
        f"bytes/device (max)"
    )
    lines.extend(f"warning: {text}" for text in report.get("warnings", ()))
    return "\n".join(lines)
