"""Progressive evaluation: every prediction is scored before its label is known.

Record level: ROC AUC of the risk over readings, exact up to ties within a logit bin
of width 0.01 (a fixed-size histogram per class, so memory does not grow with the
run). A reading's label resolves like the label join's: negative once a later reading
of its device is more than a horizon newer, positive if the device fails within the
horizon, unknown (not counted) if the run ends first and no ground truth is given.

Device level (the numbers an operator cares about). A device id lives several lives: a
failure, a repair or a replacement ends one and starts the next. Every failure counts:

- FDR: failures with an alert raised in the same life on a reading dated 0 .. horizon
  before the failure (inclusive), over failures;
- FAR: devices that never failed and got any alert, over devices that never failed;
- lead: failure time minus the earliest such alert, in the dataset's time unit;
- false alerts: raises not inside a failure window of their life, also per 1,000
  devices per time unit (the budget's unit): the false-alarm measure that still means
  something when nearly every device fails (Azure PdM, C-MAPSS);
- reachable: failures with a reading of the same life inside their window at all (a
  device whose data stops more than a horizon before its failure, like a C-MAPSS test
  engine cut off early, cannot be detected by any method);
- ``details()``: one record per failure and one per never-failing device that got an
  alert (``report.json``'s ``devices_detail``).

Drift: ``river.drift.ADWIN`` per model group on the log loss of the fleet probability,
fed as labels resolve.
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from river import drift

from schemas import Alert, Prediction

_BINS = 6001
_LOGIT_MIN = -30.0
_BIN_WIDTH = 0.01
_EPS = 1e-12


def _bin(score: float) -> int:
    if score <= 0.0:
        return 0
    if score >= 1.0:
        return _BINS - 1
    logit = math.log(score / (1.0 - score))
    index = int((logit - _LOGIT_MIN) / _BIN_WIDTH) + 1
    return min(max(index, 1), _BINS - 2)


class StreamingAUC:
    """ROC AUC from two fixed histograms over logit bins (ties count one half)."""

    __slots__ = ("neg", "pos")

    def __init__(self) -> None:
        self.pos = array("q", bytes(8 * _BINS))
        self.neg = array("q", bytes(8 * _BINS))

    def update(self, score: float, label: bool) -> None:
        """Count one labelled score."""
        (self.pos if label else self.neg)[_bin(score)] += 1

    def get(self) -> float | None:
        """The AUC, or ``None`` before both classes have been seen."""
        n_pos, n_neg = sum(self.pos), sum(self.neg)
        if not n_pos or not n_neg:
            return None
        below = 0
        wins = 0.0
        for p, n in zip(self.pos, self.neg, strict=True):
            wins += p * (below + 0.5 * n)
            below += n
        return wins / (n_pos * n_neg)


def auc_of(scores: Iterable[tuple[float, bool]]) -> float | None:
    """Streaming AUC of an iterable of (score, label) pairs."""
    auc = StreamingAUC()
    for score, label in scores:
        auc.update(score, label)
    return auc.get()


class Evaluator:
    """Progressive evaluation of one variant of risk, per model group and overall."""

    def __init__(self, horizon_s: float, *, drift_detection: bool = True) -> None:
        self.horizon_s = horizon_s
        self.drift_detection = drift_detection
        self._pending: dict[str, array[float]] = {}
        self._group: dict[str, str] = {}
        self._max_risk: dict[str, float] = {}
        self._last_ts: dict[str, float] = {}
        self._first_ts: dict[str, float] = {}
        self._raises: dict[str, list[float]] = {}
        self._failures: dict[str, list[tuple[float, float, float]]] = {}
        """Per device: ``(failure time, start of that life, last reading before it)``."""
        self._life_start: dict[str, float] = {}
        self._failure_window_max: list[float] = []
        self._auc: dict[str, StreamingAUC] = {}
        self._detectors: dict[str, Any] = {}
        self.drift_events: list[dict[str, Any]] = []
        self.readings = 0
        self.alerts_raised = 0
        self.alerts_cleared = 0

    # -- observations -------------------------------------------------------------

    def observe_prediction(self, prediction: Prediction) -> None:
        """Record a reading's scores (before its label exists)."""
        self.observe_scores(
            prediction.device_id,
            prediction.group,
            prediction.ts.timestamp(),
            prediction.risk,
            prediction.failure_probability if prediction.model_version else -1.0,
        )

    def observe_scores(
        self, device_id: str, group: str, t: float, risk: float, probability: float = -1.0
    ) -> None:
        """Like :meth:`observe_prediction` from plain values (``probability`` < 0: none)."""
        self.readings += 1
        pending = self._pending.get(device_id)
        if pending is None:
            pending = self._pending[device_id] = array("d")
            self._group[device_id] = group
            self._first_ts[device_id] = t
        elif pending and pending[0] + self.horizon_s < t:
            self._resolve_older(device_id, pending, t - self.horizon_s)
        pending.extend((t, risk, probability))
        self._last_ts[device_id] = t
        if risk > self._max_risk.get(device_id, -1.0):
            self._max_risk[device_id] = risk

    def observe_alert(self, alert: Alert) -> None:
        """Record a raised or cleared alert."""
        if alert.action == "raise":
            self.observe_raise(alert.device_id, alert.ts.timestamp())
        else:
            self.alerts_cleared += 1

    def observe_raise(self, device_id: str, t: float) -> None:
        """Record that an alert was raised on the device's reading at ``t``."""
        self.alerts_raised += 1
        self._raises.setdefault(device_id, []).append(t)

    def observe_failure(self, device_id: str, ts: datetime) -> None:
        """Record a failure: resolve the device's pending readings; a new life begins."""
        t = ts.timestamp()
        start = self._life_start.get(device_id, -math.inf)
        last = self._last_ts.get(device_id, -math.inf)
        self._failures.setdefault(device_id, []).append(
            (t, start, last if last > start else -math.inf)
        )
        self._life_start[device_id] = t
        pending = self._pending.get(device_id)
        if pending is None:
            self._group.setdefault(device_id, "unknown")
            self._failure_window_max.append(-1.0)
            return
        self._resolve_all(device_id, pending, t)
        self._pending[device_id] = array("d")

    def observe_maintenance(self, device_id: str, ts: datetime) -> None:
        """Record a repair or replacement: a new life of the device begins at ``ts``."""
        t = ts.timestamp()
        if t > self._life_start.get(device_id, -math.inf):
            self._life_start[device_id] = t

    def _resolve_older(self, device_id: str, pending: array[float], cutoff: float) -> None:
        group = self._group[device_id]
        i = 0
        while i < len(pending) and pending[i] < cutoff:
            self._count(group, pending[i + 1], pending[i + 2], False, pending[i])
            i += 3
        del pending[:i]

    def _resolve_all(self, device_id: str, pending: array[float], t_fail: float) -> None:
        group = self._group[device_id]
        window_max = -1.0
        for i in range(0, len(pending), 3):
            ts = pending[i]
            if ts > t_fail:
                continue
            label = ts + self.horizon_s >= t_fail
            if label and pending[i + 1] > window_max:
                window_max = pending[i + 1]
            self._count(group, pending[i + 1], pending[i + 2], label, ts)
        self._failure_window_max.append(window_max)

    def _count(self, group: str, risk: float, probability: float, label: bool, t: float) -> None:
        for key in (group, "*"):
            auc = self._auc.get(key)
            if auc is None:
                auc = self._auc[key] = StreamingAUC()
            auc.update(risk, label)
        if probability >= 0.0 and self.drift_detection:
            detector = self._detectors.get(group)
            if detector is None:
                detector = self._detectors[group] = drift.ADWIN()  # type: ignore[no-untyped-call]
            p = min(max(probability, _EPS), 1.0 - _EPS)
            loss = -math.log(p if label else 1.0 - p)
            detector.update(loss)
            if detector.drift_detected:
                self.drift_events.append(
                    {"group": group, "ts": datetime.fromtimestamp(t, UTC).isoformat()}
                )

    # -- results ------------------------------------------------------------------

    def finish(self, ground_truth: Mapping[str, datetime] | None = None) -> None:
        """Resolve what the run left pending using ground-truth failure times, if any."""
        for device_id, ts in (ground_truth or {}).items():
            if device_id not in self._failures and device_id in self._pending:
                self.observe_failure(device_id, ts)

    def report(
        self,
        time_unit_seconds: float = 86400.0,
        *,
        devices: Callable[[str], bool] | None = None,
    ) -> dict[str, Any]:
        """Device- and record-level figures, overall and per model group."""
        overall = self._device_figures(time_unit_seconds, devices, None)
        overall["roc_auc"] = self._auc["*"].get() if "*" in self._auc else None
        overall["drift_events"] = len(self.drift_events)
        groups = sorted(set(self._group.values()))
        per_group = {}
        for group in groups:
            figures = self._device_figures(time_unit_seconds, devices, group)
            figures["roc_auc"] = self._auc[group].get() if group in self._auc else None
            per_group[group] = figures
        overall["groups"] = per_group
        return overall

    def _outcomes(self, device_id: str) -> list[dict[str, Any]]:
        """One record per failure of ``device_id`` (times in seconds)."""
        raises = self._raises.get(device_id, ())
        horizon = self.horizon_s
        out = []
        for t_fail, start, last in self._failures.get(device_id, ()):
            life = [t for t in raises if start < t <= t_fail]
            window = [t for t in life if t >= t_fail - horizon]
            out.append(
                {
                    "t_fail": t_fail,
                    "detected": bool(window),
                    "lead_s": t_fail - min(window) if window else None,
                    "first_alert_s": t_fail - min(life) if life else None,
                    "alerts_before_window": len(life) - len(window),
                    "alerts": len(life),
                    "reachable": last >= t_fail - horizon,
                }
            )
        return out

    def _device_figures(
        self, unit: float, keep: Callable[[str], bool] | None, group: str | None
    ) -> dict[str, Any]:
        failed = healthy = failures = detected = false_alarms = reachable = 0
        leads: list[float] = []
        first_leads: list[float] = []
        early = 0
        alerts = in_windows = 0
        observed = 0.0
        for device_id, device_group in self._group.items():
            if (group is not None and device_group != group) or (keep and not keep(device_id)):
                continue
            raises = self._raises.get(device_id, ())
            alerts += len(raises)
            first = self._first_ts.get(device_id)
            if first is not None:
                observed += self._last_ts[device_id] - first
            if device_id not in self._failures:
                healthy += 1
                false_alarms += bool(raises)
                continue
            failed += 1
            for outcome in self._outcomes(device_id):
                failures += 1
                reachable += outcome["reachable"]
                early += outcome["alerts_before_window"]
                in_windows += outcome["alerts"] - outcome["alerts_before_window"]
                if outcome["detected"]:
                    detected += 1
                    leads.append(outcome["lead_s"] / unit)
                if outcome["first_alert_s"] is not None:
                    first_leads.append(outcome["first_alert_s"] / unit)
        return {
            "devices": failed + healthy,
            "failed": failed,
            "failures": failures,
            "healthy": healthy,
            "detected": detected,
            "reachable": reachable,
            "false_alarm_devices": false_alarms,
            "fdr": detected / failures if failures else None,
            "far": false_alarms / healthy if healthy else None,
            "median_lead": statistics.median(leads) if leads else None,
            "leads": sorted(leads),
            "first_alert_leads": sorted(first_leads),
            "early_alerts": early,
            "alerts": alerts,
            "false_alerts": alerts - in_windows,
            "false_alerts_per_1000_device_units": (
                1000.0 * (alerts - in_windows) / (observed / unit) if observed else None
            ),
        }

    def details(self, time_unit_seconds: float = 86400.0) -> list[dict[str, Any]]:
        """One record per failure and per never-failing device with any alert.

        Each is ``{"device_id", "failure_ts" (ISO 8601 or None), "detected", "lead" (time
        units or None), "alerts_before_window", "alerts"}``; for a device that never
        failed, every alert is outside any window, so ``alerts_before_window == alerts``.
        Sorted by device id, then failure time.
        """
        out: list[dict[str, Any]] = []
        for device_id in sorted(self._group):
            if device_id not in self._failures:
                count = len(self._raises.get(device_id, ()))
                if count:
                    out.append(
                        {
                            "device_id": device_id,
                            "failure_ts": None,
                            "detected": False,
                            "lead": None,
                            "alerts_before_window": count,
                            "alerts": count,
                        }
                    )
                continue
            for outcome in self._outcomes(device_id):
                lead = outcome["lead_s"]
                out.append(
                    {
                        "device_id": device_id,
                        "failure_ts": datetime.fromtimestamp(outcome["t_fail"], UTC).isoformat(),
                        "detected": outcome["detected"],
                        "lead": None if lead is None else lead / time_unit_seconds,
                        "alerts_before_window": outcome["alerts_before_window"],
                        "alerts": outcome["alerts"],
                    }
                )
        return out

    def sweep(self, thresholds: Iterable[float]) -> list[dict[str, float]]:
        """FDR and FAR if an alert fired whenever risk >= threshold (post-run curve).

        Not an online figure: no budget, no hysteresis, and the threshold is chosen
        after seeing the run. For a fixed score that bounds what one threshold can
        reach; a learnt model's scale moves between versions, so online alerts, whose
        cutoff follows each day's ranking, can do better. FAR is NaN when no device
        survived.
        """
        failed = list(self._failure_window_max)
        healthy = [r for d, r in self._max_risk.items() if d not in self._failures]
        failed.sort()
        healthy.sort()
        out = []
        import bisect

        for thr in thresholds:
            fdr = (len(failed) - bisect.bisect_left(failed, thr)) / len(failed) if failed else 0.0
            far = (
                (len(healthy) - bisect.bisect_left(healthy, thr)) / len(healthy)
                if healthy
                else math.nan  # no device survived: FAR is undefined
            )
            out.append({"threshold": thr, "fdr": fdr, "far": far})
        return out

    def alerted_devices(self) -> list[str]:
        """Devices that had at least one alert raised, sorted."""
        return sorted(device for device, raises in self._raises.items() if raises)

    def max_risks(self) -> tuple[list[float], list[float]]:
        """Window-max risk of each failure and overall max risk of never-failing devices."""
        failed = list(self._failure_window_max)
        healthy = [r for d, r in self._max_risk.items() if d not in self._failures]
        return failed, healthy
