"""The honest protocol of issue 11: one preset, seeds 0-4, model beside every baseline.

Usage: ``.venv/bin/python bench/protocol.py PATH [PATH ...] [--seeds 0,1,2,3,4]
[--limit N] [--option KEY=VALUE ...]``

For each file: one backtest per seed with the Backblaze preset (nothing per file),
then per variant the mean and the spread (min-max) over the seeds of FDR, FAR,
median lead, FDR counting only alerts at least a day ahead, and alerts. The rules and
the expert score do not depend on the seed; the model does (negative subsample,
shuffle order). ``--option`` sets ``EngineConfig`` fields (``name=value``, parsed as
Python literals; durations in seconds) or, for unknown names, ``extra`` entries: for
exploring on the choosing file only.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import statistics
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeline import gc_tuning
from pipeline.backtest import PRESETS, dataset_report, run_backtest
from pipeline.backtest.presets import RULE_COUNTERS
from pipeline.backtest.report import VARIANTS
from pipeline.datasets import open_dataset
from pipeline.engine import EngineConfig


def _options(items: list[str]) -> tuple[dict[str, Any], dict[str, float]]:
    names = {item.name for item in fields(EngineConfig)}
    defaults = EngineConfig()
    config: dict[str, Any] = {}
    extra: dict[str, float] = {}
    for item in items:
        key, _, text = item.partition("=")
        value = ast.literal_eval(text)
        if key in names:
            if isinstance(getattr(defaults, key), timedelta) and isinstance(value, int | float):
                value = timedelta(seconds=value)  # durations in seconds
            config[key] = value
        else:
            extra[key] = float(value)
    return config, extra


def _fmt(values: list[float], scale: float, digits: int) -> str:
    mean = statistics.fmean(values)
    return (
        f"{scale * mean:.{digits}f} ({scale * min(values):.{digits}f}-"
        f"{scale * max(values):.{digits}f})"
    )


def main() -> None:
    """Run the protocol and print one table per file."""
    parser = argparse.ArgumentParser()
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--option", action="append", default=[])
    args = parser.parse_args()
    gc_tuning.tune()  # as the forewarn command does
    overrides, extra = _options(args.option)
    base = EngineConfig(**{**PRESETS["backblaze"], **overrides}, extra=extra)
    seeds = [int(s) for s in args.seeds.split(",")]
    for path in args.paths:
        dataset = open_dataset("backblaze", path)
        reports = []
        for seed in seeds:
            config = replace(base, seed=seed)
            result = run_backtest(
                itertools.islice(dataset.events(), args.limit),
                config,
                rule_counters=RULE_COUNTERS["backblaze"],
                ground_truth=dataset.ground_truth_failures,
            )
            report = dataset_report(result, dataset)
            reports.append(report)
            m, e = report["model"], report["rule_budgeted"]
            print(
                f"  seed {seed}: model FDR {100 * (m['fdr'] or 0):.1f} % FAR "
                f"{100 * (m['far'] or 0):.2f} % | expert FDR {100 * (e['fdr'] or 0):.1f} % "
                f"FAR {100 * (e['far'] or 0):.2f} % | {result.readings / result.cpu_seconds:,.0f}"
                " readings/CPU-s",
                flush=True,
            )
        first = reports[0]
        print(
            f"\n{first['dataset']}: {first['readings']:,} readings, {first['failures']} "
            f"failures, seeds {args.seeds}; counters {', '.join(first['error_counters'])}"
        )
        print(
            f"{'variant':<18}{'FDR %':>18}{'FAR %':>20}{'lead d':>16}{'FDR>=1d %':>18}"
            f"{'alerts':>10}"
        )
        for name in VARIANTS:
            rows = [r[name] for r in reports]
            print(
                f"{name:<18}{_fmt([r['fdr'] or 0.0 for r in rows], 100, 1):>18}"
                f"{_fmt([r['far'] or 0.0 for r in rows], 100, 2):>20}"
                f"{_fmt([r['median_lead'] or 0.0 for r in rows], 1, 1):>16}"
                f"{_fmt([r['fdr_lead_1'] or 0.0 for r in rows], 100, 1):>18}"
                f"{statistics.fmean(r['alerts'] for r in rows):>10,.0f}"
            )
        sweeps = [r["post_run_sweep"] for r in reports]
        for key in ("fdr_at_far_1pct", "rule_budgeted_fdr_at_far_1pct"):
            values = [s[key] or 0.0 for s in sweeps]
            print(f"post-run sweep (one threshold) {key}: {_fmt(values, 100, 1)} %")
        auc = [r["model"]["roc_auc"] or 0.0 for r in reports]
        print(f"model ROC AUC {_fmt(auc, 1, 3)}\n", flush=True)


if __name__ == "__main__":
    main()
