"""Seed sensitivity of the online figures: one backtest per seed, same data and config.

Usage: ``.venv/bin/python bench/seeds.py [FORMAT PATH] [--seeds 0,1,2,3,4] [--budget X]``

The seed changes only the negative subsample and the trainer's shuffle order; at 120
failed drives one detection is 0.83 FDR points, so single-seed differences of a few
points are noise. Prints one row per seed and the mean.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from pipeline.backtest import PRESETS, dataset_report, run_backtest
from pipeline.datasets import open_dataset
from pipeline.engine import EngineConfig

DEFAULT_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/backblaze/backblaze-2013-04-10_2013-05-19.csv.gz"
)


def main() -> None:
    """Run one backtest per seed and print FDR, FAR, lead and AUC."""
    parser = argparse.ArgumentParser()
    parser.add_argument("format", nargs="?", default="backblaze")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--budget", type=float, default=None)
    args = parser.parse_args()
    dataset = open_dataset(args.format, args.path)
    base = EngineConfig(**PRESETS.get(args.format, {}))
    if args.budget is not None:
        base = replace(base, alert_budget=args.budget)
    rows = []
    print(f"{'seed':>4}{'FDR':>8}{'FAR':>8}{'lead':>6}{'alerts':>8}{'AUC':>7}{'sweep@1%':>10}")
    for seed in (int(s) for s in args.seeds.split(",")):
        config = replace(base, seed=seed)
        result = run_backtest(
            dataset.events(),
            config,
            rule_counters=config.counter_metrics,
            ground_truth=dataset.ground_truth_failures,
        )
        report = dataset_report(result, dataset)
        m = report["model"]
        row = (
            m["fdr"] or 0.0,
            m["far"] or 0.0,
            m["median_lead"] or 0.0,
            m["alerts"],
            m["roc_auc"] or 0.0,
            report["post_run_sweep"]["fdr_at_far_1pct"] or 0.0,
        )
        rows.append(row)
        print(
            f"{seed:>4}{100 * row[0]:>7.1f}%{100 * row[1]:>7.2f}%{row[2]:>6.1f}{row[3]:>8}"
            f"{row[4]:>7.3f}{100 * row[5]:>9.1f}%",
            flush=True,
        )
    means = [statistics.fmean(col) for col in zip(*rows, strict=True)]
    print(
        f"mean{100 * means[0]:>7.1f}%{100 * means[1]:>7.2f}%{means[2]:>6.1f}{means[3]:>8.0f}"
        f"{means[4]:>7.3f}{100 * means[5]:>9.1f}%"
    )


if __name__ == "__main__":
    main()
