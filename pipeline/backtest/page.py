"""What ``forewarn report`` draws beyond the headline figures, kept in ``report.json``.

``report.json["page"]`` holds the post-run detection-vs-false-alarm curve, the risk
timelines of a few detected, missed and falsely alerted devices, and the first alerts
with their explanations. Everything is derived deterministically from the run, and
bounded (``MAX_*``), so identical runs still write identical files.
"""

from __future__ import annotations

import zlib
from typing import Any

from pipeline.backtest.driver import BacktestResult
from pipeline.backtest.report import SWEEP_THRESHOLDS

MAX_CURVE_POINTS = 200
MAX_TIMELINES = 4
"""Devices per kind (detected, missed, false alarm)."""
MAX_TIMELINE_POINTS = 120
MAX_ALERTS = 200


def _stable(devices: set[str], n: int) -> list[str]:
    return sorted(devices, key=lambda d: (zlib.crc32(d.encode()), d))[:n]


def _curve(result: BacktestResult) -> list[dict[str, float]]:
    sweep = [p for p in result.model.sweep(SWEEP_THRESHOLDS) if p["far"] == p["far"]]
    step = max(1, len(sweep) // MAX_CURVE_POINTS)
    points = sweep[::step]
    return [
        {
            "threshold": round(p["threshold"], 9),
            "fdr": round(p["fdr"], 6),
            "far": round(p["far"], 6),
        }
        for p in points
    ]


def _timeline(result: BacktestResult, device: str, unit_s: float) -> dict[str, Any]:
    series = result.series[device]
    n = len(series.t)
    step = max(1, -(-n // MAX_TIMELINE_POINTS))
    indices = list(range(0, n, step))
    if indices and indices[-1] != n - 1:
        indices.append(n - 1)
    t0 = series.t[0] if n else 0.0
    return {
        "device_id": device,
        "start": t0,
        "t": [round((series.t[i] - t0) / unit_s, 4) for i in indices],
        "risk": [round(float(series.risk[i]), 6) for i in indices],
        "anomaly": [round(float(series.anomaly[i]), 6) for i in indices],
    }


def page_data(result: BacktestResult, unit_s: float) -> dict[str, Any]:
    """The ``page`` section of ``report.json`` (see the module docstring)."""
    failed = set(result.failed_devices)
    alerted = set(result.model.alerted_devices())
    with_series = set(result.series)
    kinds = {
        "detected": failed & alerted,
        "missed": failed - alerted,
        "false_alarm": alerted - failed,
    }
    timelines = {
        kind: [
            _timeline(result, device, unit_s)
            for device in _stable(devices & with_series, MAX_TIMELINES)
        ]
        for kind, devices in kinds.items()
    }
    alerts = [
        {
            "ts": alert.ts.isoformat(),
            "device_id": alert.device_id,
            "device_type": alert.device_type,
            "severity": alert.severity,
            "risk": round(alert.risk, 6),
            "threshold": alert.threshold,
            "failed": alert.device_id in failed,
            "explanations": [e.text for e in alert.explanations],
            "reason": alert.reason,
        }
        for alert in result.raised[:MAX_ALERTS]
    ]
    return {
        "curve": _curve(result),
        "timelines": timelines,
        "devices_by_kind": {kind: len(devices) for kind, devices in kinds.items()},
        "alerts": alerts,
        "alerts_total": len(result.raised),
    }
