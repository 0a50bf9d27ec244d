"""The dashboards' roll-ups: one device_risk point per device and period, fleet totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.streaming.rollup import Rollup, period_start_ns
from schemas import Factor, Prediction

T0 = datetime(2013, 4, 10, 6, tzinfo=UTC)
DAY_NS = 86_400 * 10**9


def _prediction(device: str, ts: datetime, risk: float, version: int = 1) -> Prediction:
    return Prediction(
        device_id=device,
        device_type="ST4000DM000",
        group="fleet",
        ts=ts,
        failure_probability=risk,
        anomaly_score=0.1,
        risk=risk,
        top_factors=[
            Factor(feature="smart_5_raw", value=1.0, contribution=1.0, label="reallocated sectors")
        ],
        model_version=version,
    )


def _points(lines: list[str], measurement: str) -> list[tuple[str, str, int]]:
    out = []
    for line in lines:
        head, rest = line.split(" ", 1)  # no escaped spaces in these tags
        fields, ts = rest.rsplit(" ", 1)
        if head.split(",")[0] == measurement:
            out.append((head, fields, int(ts)))
    return out


def test_device_risk_keeps_the_latest_state_per_device_and_period() -> None:
    rollup = Rollup(period_s=86_400, worker="w", run="r1")
    rollup.offer(_prediction("a", T0, 0.2), alert_open=False)
    rollup.offer(_prediction("a", T0 + timedelta(hours=5), 0.7), alert_open=True)
    rollup.offer(_prediction("a", T0 + timedelta(hours=1), 0.1), alert_open=False)  # late
    rollup.offer(_prediction("a", T0 + timedelta(days=1), 0.3), alert_open=True)
    rollup.offer(_prediction("b", T0, 0.05), alert_open=False)
    points = _points(rollup.drain(), "device_risk")
    assert len(points) == 3  # a on two days, b on one
    day0 = period_start_ns(int(T0.timestamp()) * 10**9, 86_400)
    latest_a = [p for p in points if "device_id=a" in p[0] and p[2] == day0]
    assert len(latest_a) == 1
    assert "risk=0.7," in latest_a[0][1]
    assert "alert_open=true" in latest_a[0][1]
    assert 'top_factor="reallocated sectors"' in latest_a[0][1]
    assert sorted({p[2] for p in points}) == [day0, day0 + DAY_NS]
    assert rollup.drain() == []  # nothing new since


def test_fleet_risk_accumulates_running_totals_per_group_and_period() -> None:
    rollup = Rollup(period_s=86_400, worker="w", run="r1")
    rollup.offer(_prediction("a", T0, 0.2, version=3), alert_open=False)
    rollup.offer(_prediction("b", T0, 0.6, version=4), alert_open=True)
    first = _points(rollup.drain(), "fleet_risk")
    assert len(first) == 1
    head, fields, _ = first[0]
    assert head == "fleet_risk,group=fleet,run=r1,worker=w"
    assert "readings=2i" in fields
    assert "risk_max=0.6" in fields
    assert "alerts_open=1i" in fields
    assert "model_version=4i" in fields
    rollup.offer(_prediction("c", T0 + timedelta(hours=2), 0.9, version=4), alert_open=False)
    ((_, fields, _),) = _points(rollup.drain(), "fleet_risk")
    assert "readings=3i" in fields  # running totals: the later point overwrites the first
    assert "risk_max=0.9" in fields
    assert abs(float(fields.split("risk_sum=")[1].split(",")[0]) - 1.7) < 1e-9


def test_old_periods_are_forgotten() -> None:
    rollup = Rollup(period_s=86_400, worker="w", run="r", keep_periods=2)
    for day in range(5):
        rollup.offer(_prediction("a", T0 + timedelta(days=day), 0.1), alert_open=False)
        rollup.drain()
    rollup.offer(_prediction("a", T0 + timedelta(days=4, hours=1), 0.1), alert_open=False)
    ((_, fields, _),) = _points(rollup.drain(), "fleet_risk")
    assert "readings=2i" in fields
