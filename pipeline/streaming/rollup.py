"""Roll-ups the dashboards read instead of scanning every ``prediction`` point.

Both are written by the worker's sink in the same flush as the prediction points,
before the input offsets are acknowledged (the same at-least-once path), and both are
stamped with the start of an event-time period (``FOREWARN_ROLLUP_PERIOD_S``, a day by
default), so a later write for the same series and period overwrites the earlier one:

- ``device_risk``: each device's latest state, at most one point per device and
  period. Within a checkpoint only each device's newest state per period is written.
- ``fleet_risk``: per model group, the period's running totals over the readings this
  worker process scored (readings, sums and maximum of risk, readings of devices with
  an open alert, newest model version). Tagged ``worker`` and ``run`` (a per-process id)
  so that workers and restarts add up instead of overwriting each other; a window that
  is replayed after a crash is counted again by the new run (documented in
  docs/operators.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.streaming.lineprotocol import device_series, field_string, reading_nanoseconds, tag
from schemas import Prediction

DEVICE_RISK = "device_risk"
FLEET_RISK = "fleet_risk"
DEFAULT_PERIOD_S = 86_400


def period_start_ns(ts_ns: int, period_s: int) -> int:
    """The start of the period holding ``ts_ns`` (nanoseconds since the epoch)."""
    period_ns = period_s * 1_000_000_000
    return ts_ns - ts_ns % period_ns


def device_risk_line(prediction: Prediction, *, alert_open: bool, period_s: int) -> str:
    """The ``device_risk`` point of a prediction, stamped with its period's start.

    Fields: ``risk``, ``failure_probability``, ``anomaly_score`` (float),
    ``model_version`` (integer), ``top_factor`` (string, in plain words when known),
    ``alert_open`` (boolean), ``reading_ts`` (integer, ns: the reading it reflects).
    """
    ts_ns = reading_nanoseconds(prediction.ts)
    top = prediction.top_factors[0] if prediction.top_factors else None
    top_text = (top.label or top.feature) if top is not None else ""
    series = device_series(
        DEVICE_RISK, prediction.device_id, prediction.device_type, prediction.group
    )
    return (
        f"{series}"
        f"risk={float(prediction.risk)!r},"
        f"failure_probability={float(prediction.failure_probability)!r},"
        f"anomaly_score={float(prediction.anomaly_score)!r},"
        f"model_version={int(prediction.model_version)}i,"
        f"top_factor={field_string(top_text)},"
        f"alert_open={'true' if alert_open else 'false'},"
        f"reading_ts={ts_ns}i "
        f"{period_start_ns(ts_ns, period_s)}"
    )


@dataclass(slots=True)
class Totals:
    """One model group's totals over one period."""

    readings: int = 0
    risk_sum: float = 0.0
    risk_max: float = 0.0
    failure_probability_sum: float = 0.0
    anomaly_score_sum: float = 0.0
    alerts_open: int = 0
    model_version: int = 0


class Rollup:
    """Collects a checkpoint's predictions; ``drain`` turns them into roll-up points.

    Memory: one entry per device seen since the last drain, plus the totals of the
    periods still receiving readings (older periods are dropped once ``keep_periods``
    newer ones exist).
    """

    def __init__(self, *, period_s: int, worker: str, run: str, keep_periods: int = 8) -> None:
        self.period_s = period_s
        self._period_ns = period_s * 1_000_000_000
        self._worker = tag(worker)
        self._run = tag(run)
        self._keep = keep_periods
        self._latest: dict[tuple[str, int], tuple[Prediction, bool]] = {}
        self._totals: dict[tuple[str, int], Totals] = {}
        self._touched: set[tuple[str, int]] = set()

    def offer(self, prediction: Prediction, *, alert_open: bool) -> None:
        """Account one prediction; ``alert_open``: its device has an open alert after it."""
        ts_ns = reading_nanoseconds(prediction.ts)
        start = ts_ns - ts_ns % self._period_ns
        key = (prediction.device_id, start)
        held = self._latest.get(key)
        if held is None or prediction.ts >= held[0].ts:
            self._latest[key] = (prediction, alert_open)
        group_key = (prediction.group, start)
        totals = self._totals.get(group_key)
        if totals is None:
            totals = self._totals[group_key] = Totals()
        risk = prediction.risk
        totals.readings += 1
        totals.risk_sum += risk
        totals.risk_max = risk if risk > totals.risk_max else totals.risk_max
        totals.failure_probability_sum += prediction.failure_probability
        totals.anomaly_score_sum += prediction.anomaly_score
        totals.alerts_open += alert_open
        totals.model_version = max(totals.model_version, prediction.model_version)
        self._touched.add(group_key)

    def drain(self) -> list[str]:
        """The points of everything offered since the last drain."""
        latest, self._latest = self._latest, {}
        lines = [
            device_risk_line(prediction, alert_open=alert_open, period_s=self.period_s)
            for prediction, alert_open in latest.values()
        ]
        for group, start in sorted(self._touched):
            t = self._totals[(group, start)]
            lines.append(
                f"{FLEET_RISK},group={tag(group)},run={self._run},worker={self._worker} "
                f"readings={t.readings}i,risk_sum={t.risk_sum!r},risk_max={t.risk_max!r},"
                f"failure_probability_sum={t.failure_probability_sum!r},"
                f"anomaly_score_sum={t.anomaly_score_sum!r},alerts_open={t.alerts_open}i,"
                f"model_version={t.model_version}i {start}"
            )
        self._touched.clear()
        periods = sorted({start for _, start in self._totals})
        if len(periods) > self._keep:
            oldest_kept = periods[-self._keep]
            self._totals = {k: v for k, v in self._totals.items() if k[1] >= oldest_kept}
        return lines

    @property
    def pending(self) -> int:
        """Devices waiting for the next drain."""
        return len(self._latest)
