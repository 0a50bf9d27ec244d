"""Compare the fleet pipelines of the registry on a dataset (one backtest each).

Usage: ``.venv/bin/python bench/fleet_models.py [FORMAT PATH] [--models a,b] [--limit N]``

Prints one row per pipeline: ROC AUC over readings, online FDR/FAR/median lead from
the alerts the policy raised, the post-run sweep's FDR at FAR <= 1 % (an upper bound),
and throughput. The default fleet model is the one that ranks best here.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

from pipeline.backtest import PRESETS, dataset_report, run_backtest
from pipeline.datasets import open_dataset
from pipeline.engine import FLEET_MODELS, EngineConfig

DEFAULT_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/backblaze/backblaze-2013-04-10_2013-05-19.csv.gz"
)


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:5.1f}%"


def main() -> None:
    """Run one backtest per pipeline and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("format", nargs="?", default="backblaze")
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--models", default=",".join(FLEET_MODELS))
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    dataset = open_dataset(args.format, args.path)
    base = EngineConfig(**PRESETS.get(args.format, {}))
    print(f"{'model':<18}{'AUC':>7}{'FDR':>8}{'FAR':>8}{'lead':>6}{'sweep@1%':>10}{'rps':>9}")
    for name in args.models.split(","):
        config = replace(base, fleet_model=name)
        result = run_backtest(
            itertools.islice(dataset.events(), args.limit),
            config,
            rule_counters=config.counter_metrics,
            ground_truth=dataset.ground_truth_failures,
        )
        report = dataset_report(result, dataset)
        model = report["model"]
        auc = model["roc_auc"]
        lead = model["median_lead"]
        print(
            f"{name:<18}{auc if auc is None else round(auc, 3)!s:>7}{_pct(model['fdr']):>8}"
            f"{_pct(model['far']):>8}{lead if lead is None else round(lead, 1)!s:>6}"
            f"{_pct(report['post_run_sweep']['fdr_at_far_1pct']):>10}"
            f"{result.readings / result.cpu_seconds:>9,.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
