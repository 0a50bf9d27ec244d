"""Every Grafana panel's and alert rule's Flux query, timed against the real InfluxDB.

    .venv/bin/python bench/grafana_queries.py load [--devices 22892 --predictions 868524]
    .venv/bin/python bench/grafana_queries.py run [--repeat 3]

``load`` writes a synthetic fleet of the demo's size into the bucket ``forewarn-bench``
(created if missing, emptied first): ``reading`` and ``prediction`` points (one each per
reading, the demo's 2013-04-10 .. 2013-05-19 period; a reading has the Backblaze
sample's six metrics), ``device_risk`` points as the worker's sink writes them, alerts,
model and pipeline health. The points are built by the worker's own
line-protocol functions. ``run`` executes every query of every dashboard under
``infra/grafana/dashboards/forewarn`` and every alert rule under
``infra/grafana/alerting`` over that period, with Grafana's variables substituted, and
prints each query's wall time (the best of ``--repeat``) and each dashboard's total
(panels one after the other; Grafana runs them in parallel, so this is an upper bound).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from influxdb_client.client.influxdb_client import InfluxDBClient

from pipeline.grafana import PanelQuery, flux_for, panel_queries
from pipeline.influx import flux_string, influx_client
from pipeline.settings import Settings, load_settings
from pipeline.streaming.lineprotocol import alert_line, line, prediction_line, reading_line
from pipeline.streaming.rollup import Rollup
from schemas import Alert, Factor, Prediction, Telemetry

BUCKET = "forewarn-bench"
START = datetime(2013, 4, 10, tzinfo=UTC)
DAYS = 40
REPO = Path(__file__).resolve().parents[1]


def synthetic_fleet(
    devices: int, predictions: int, *, seed: int = 0, period_s: int = 86_400
) -> Iterator[list[str]]:
    """Batches of line protocol for a fleet reporting daily, ``predictions`` readings in all."""
    rng = random.Random(seed)
    per_day = predictions / DAYS
    types = [f"MODEL{i:02d}" for i in range(24)]
    factor = Factor(feature="smart_197_raw", value=2.0, contribution=1.0, label="pending sectors")
    rollup = Rollup(period_s=period_s, worker="forewarn-worker", run="bench")
    written = 0
    for day in range(DAYS):
        ts = START + timedelta(days=day)
        count = round(per_day * (day + 1)) - round(per_day * day)
        count = min(count, devices, predictions - written)
        batch: list[str] = []
        for i in range(count):
            device = f"D{(i * 7919 + day * 13) % devices:06d}"
            risk = min(1.0, rng.betavariate(0.3, 20.0))
            prediction = Prediction.model_construct(
                device_id=device,
                device_type=types[hash(device) % len(types)],
                group="fleet",
                ts=ts,
                failure_probability=risk,
                anomaly_score=rng.random() * 0.1,
                risk=risk,
                top_factors=[factor],
                model_version=day,
            )
            reading = reading_line(_reading(prediction, day, rng))
            assert reading is not None
            batch += [reading, prediction_line(prediction)]
            rollup.offer(prediction, alert_open=risk > 0.1)
            if risk > 0.1 and rng.random() < 0.05:
                batch.append(alert_line(_alert(prediction)))
            if len(batch) >= 5_000:  # a worker checkpoint
                yield batch + rollup.drain()
                batch = []
        written += count
        batch += [
            line("model_health", {"group": "fleet"}, _model_health(day), ts),
            line("pipeline_health", {"worker": "forewarn-worker"}, _pipeline_health(day), ts),
        ]
        yield batch + rollup.drain()


def _reading(prediction: Prediction, day: int, rng: random.Random) -> Telemetry:
    """The reading behind ``prediction``: the Backblaze sample's six metrics."""
    return Telemetry.model_construct(
        device_id=prediction.device_id,
        ts=prediction.ts,
        device_type=prediction.device_type,
        metrics={
            "capacity_bytes": 3_000_592_982_016.0,
            "smart_1_raw": float(rng.randrange(0, 200_000_000)),
            "smart_5_raw": float(rng.randrange(0, 3)),
            "smart_9_raw": float(4_000 + 24 * day),
            "smart_194_raw": float(rng.randrange(20, 45)),
            "smart_197_raw": float(rng.randrange(0, 2)),
        },
        tags={},
    )


def _alert(prediction: Prediction) -> Alert:
    return Alert.model_construct(
        schema_version=2,
        alert_id=f"{prediction.device_id}-{prediction.ts:%m%d}",
        action="raise",
        device_id=prediction.device_id,
        device_type=prediction.device_type,
        group=prediction.group,
        ts=prediction.ts,
        raised_at=prediction.ts,
        severity="critical" if prediction.risk > 0.2 else "warning",
        risk=prediction.risk,
        failure_probability=prediction.failure_probability,
        anomaly_score=prediction.anomaly_score,
        top_factors=prediction.top_factors,
        model_version=prediction.model_version,
        reason="risk above the learned threshold 0.3: pending sectors (SMART 197) 64 sectors",
        threshold=0.3,
        explanations=[],
        counters_rose=["smart_197_raw"],
    )


def _model_health(day: int) -> dict[str, float | int | str | bool]:
    return {
        "roc_auc": 0.8,
        "fdr": 0.5,
        "far": 0.01,
        "alerts": day * 10,
        "labels_positive": day * 3,
        "labels_negative": day * 300,
        "drift_events": 0,
        "model_version": day,
    }


def _pipeline_health(day: int) -> dict[str, float | int | str | bool]:
    return {
        "readings_per_second": 2500.0,
        "readings": day * 21_000,
        "consumer_lag": 0,
        "rejected": 0,
        "duplicates": 0,
        "write_errors": 0,
        "buffered_points": 0,
        "models_refused": 0,
    }


def load(settings: Settings, devices: int, predictions: int) -> int:
    """Empty the bench bucket and write the synthetic fleet; returns the lines written."""
    from influxdb_client.client.write_api import SYNCHRONOUS

    with influx_client(settings, timeout_ms=120_000) as client:
        buckets = client.buckets_api()
        old = buckets.find_bucket_by_name(settings.influx_bucket)
        if old is not None:
            buckets.delete_bucket(old)
        buckets.create_bucket(bucket_name=settings.influx_bucket, org=settings.influx_org)
        writer = client.write_api(write_options=SYNCHRONOUS)
        total = 0
        for batch in synthetic_fleet(devices, predictions):
            for chunk in range(0, len(batch), 10_000):
                writer.write(
                    settings.influx_bucket, settings.influx_org, batch[chunk : chunk + 10_000]
                )
            total += len(batch)
        return total


def run(
    settings: Settings, repeat: int, start: datetime, stop: datetime
) -> list[tuple[PanelQuery, float, int]]:
    """Time every query; returns ``(query, best seconds, rows)``."""
    results = []
    with influx_client(settings, timeout_ms=120_000) as client:
        api = client.query_api()
        device_id = alerted_device(settings, client)
        for query in panel_queries(REPO / "infra" / "grafana"):
            flux = flux_for(
                query, bucket=settings.influx_bucket, start=start, stop=stop, device_id=device_id
            )
            best = float("inf")
            rows = 0
            for _ in range(repeat):
                began = time.perf_counter()
                tables = api.query(flux, org=settings.influx_org)
                best = min(best, time.perf_counter() - began)
                rows = sum(len(table.records) for table in tables)
            results.append((query, best, rows))
    return results


def alerted_device(settings: Settings, client: InfluxDBClient) -> str:
    """A device with an alert in the bucket (the drill-down dashboard's variable)."""
    flux = (
        f"from(bucket: {flux_string(settings.influx_bucket)}) |> range(start: 0)"
        ' |> filter(fn: (r) => r._measurement == "alert" and r._field == "risk")'
        " |> group() |> first()"
    )
    tables = client.query_api().query(flux, org=settings.influx_org)
    return str(tables[0].records[0].values["device_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["load", "run"])
    parser.add_argument("--devices", type=int, default=22_892)
    parser.add_argument("--predictions", type=int, default=868_524)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = load_settings().model_copy(update={"influx_bucket": BUCKET})
    if args.action == "load":
        began = time.perf_counter()
        lines = load(settings, args.devices, args.predictions)
        print(f"wrote {lines:,} points to {BUCKET} in {time.perf_counter() - began:.0f} s")
        return
    results = run(settings, args.repeat, START, START + timedelta(days=DAYS))
    totals: dict[str, float] = {}
    for query, seconds, rows in results:
        totals[query.dashboard] = totals.get(query.dashboard, 0.0) + seconds
        print(
            f"{seconds:6.3f} s {rows:7,} rows  {query.dashboard} / {query.title} [{query.ref_id}]"
        )
    for dashboard, seconds in totals.items():
        print(f"{seconds:6.3f} s total  {dashboard}")


if __name__ == "__main__":
    main()
