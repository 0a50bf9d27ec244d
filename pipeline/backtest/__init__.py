"""The backtest driver: a dataset through the engine in-process, and its report."""

from __future__ import annotations

from pipeline.backtest.driver import BacktestResult, run_backtest
from pipeline.backtest.presets import PRESETS
from pipeline.backtest.report import (
    build_report,
    dataset_report,
    strip_timing,
    summary,
    write_report,
)

__all__ = [
    "PRESETS",
    "BacktestResult",
    "build_report",
    "dataset_report",
    "run_backtest",
    "strip_timing",
    "summary",
    "write_report",
]
