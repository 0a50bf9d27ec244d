"""The backtest's picture: risk over time, and the post-run FDR/FAR curve."""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pipeline.backtest.driver import BacktestResult
from pipeline.backtest.report import SWEEP_THRESHOLDS

_FLOOR = 1e-6
"""Risks below this (0 before a group's model is ready) are drawn at it."""


def _sample(devices: list[str], n: int) -> list[str]:
    return sorted(devices, key=lambda d: zlib.crc32(d.encode()))[:n]


def write_plot(result: BacktestResult, report: dict[str, Any], path: Path, unit_s: float) -> None:
    """Write a PNG with two panels; the curve is labelled as chosen after the run."""
    fig, (ax_risk, ax_curve) = plt.subplots(1, 2, figsize=(14, 5.5))
    failed = set(result.failed_devices)
    with_series = [d for d in result.series if d in failed]
    healthy = [d for d in result.series if d not in failed]
    t0 = min((s.t[0] for s in result.series.values() if len(s.t)), default=0.0)
    for devices, colour, label in (
        (_sample(healthy, 12), "0.6", "never failed (sample)"),
        (_sample(with_series, 12), "tab:red", "failed (sample)"),
    ):
        for i, device in enumerate(devices):
            series = result.series[device]
            xs = [(t - t0) / unit_s for t in series.t]
            risks = [max(r, _FLOOR) for r in series.risk]
            ax_risk.plot(xs, risks, color=colour, lw=1, alpha=0.8, label=label if i == 0 else None)
            anomalies = [max(a, _FLOOR) for a in series.anomaly]
            ax_risk.plot(
                xs,
                anomalies,
                color=colour,
                lw=0.8,
                ls="--",
                alpha=0.6,
                label=f"{label}: anomaly score" if i == 0 else None,
            )
            for t_fail in result.failure_times.get(device, ()):
                ax_risk.axvline((t_fail - t0) / unit_s, color="black", lw=0.6, ls=":")
    ax_risk.set_yscale("log")
    ax_risk.set_ylim(_FLOOR / 2, 1.0)
    ax_risk.set_xlabel(f"{report['time_unit']} since start")
    ax_risk.set_ylabel("combined risk (solid), anomaly score (dashed)")
    ax_risk.set_title("Risk and anomaly score over time (dotted line: failure)")
    ax_risk.legend(loc="upper left")

    for evaluator, colour, label in (
        (result.model, "tab:blue", "model, post-run sweep"),
        (result.rule_budgeted, "tab:orange", "expert score, post-run sweep"),
    ):
        sweep = evaluator.sweep(SWEEP_THRESHOLDS)
        fars = [max(p["far"], 1e-4) for p in sweep]
        ax_curve.plot(fars, [p["fdr"] for p in sweep], color=colour, label=label)
    for name, marker in (
        ("model", "o"),
        ("rule_budgeted", "D"),
        ("rule_any_rose", "v"),
        ("rule_any_positive", "P"),
        ("baseline", "s"),
        ("anomaly_only", "^"),
    ):
        v = report[name]
        if v["far"] is not None and v["fdr"] is not None:
            ax_curve.plot(
                max(v["far"], 1e-4), v["fdr"], marker, ms=9, label=f"{name} (online alerts)"
            )
    ax_curve.set_xscale("log")
    ax_curve.set_xlim(1e-4, 1.0)
    ax_curve.set_ylim(0, 1)
    ax_curve.set_xlabel("FAR (devices that never failed, alerted)")
    ax_curve.set_ylabel("FDR (failed devices alerted within the horizon)")
    ax_curve.set_title("FDR vs FAR: curve = one threshold chosen after the run")
    ax_curve.grid(True, which="both", alpha=0.3)
    ax_curve.legend(loc="lower right")
    fig.suptitle(f"{report['dataset']}: forewarn backtest")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    assert math.isfinite(t0)
