"""Every dashboard panel's and alert rule's Flux query, run against the real InfluxDB.

A small fleet (the benchmark's generator, built with the worker's own line-protocol
and roll-up code) is written to a bucket of its own; each query must return rows with
the columns its panel reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from influxdb_client.client.write_api import SYNCHRONOUS

from bench.grafana_queries import DAYS, START, alerted_device, synthetic_fleet
from pipeline.datasets import Event
from pipeline.grafana import flux_for, panel_queries
from pipeline.influx import count_points, flux_string, influx_client
from pipeline.settings import Settings
from pipeline.streaming.lineprotocol import reading_line
from schemas import Telemetry
from tests.integration.harness import Deployment, wait_until

GRAFANA = Path(__file__).resolve().parents[2] / "infra" / "grafana"


@pytest.fixture(scope="module")
def fleet_bucket() -> Iterator[Settings]:
    import uuid

    from pipeline.settings import load_settings

    settings = load_settings().model_copy(
        update={"influx_bucket": f"test-grafana-{uuid.uuid4().hex[:8]}"}
    )
    with influx_client(settings, timeout_ms=60_000) as client:
        bucket = client.buckets_api().create_bucket(
            bucket_name=settings.influx_bucket, org=settings.influx_org
        )
        writer = client.write_api(write_options=SYNCHRONOUS)
        try:
            for batch in synthetic_fleet(devices=400, predictions=400 * DAYS, seed=1):
                writer.write(settings.influx_bucket, settings.influx_org, batch)
            yield settings
        finally:
            client.buckets_api().delete_bucket(bucket)


def test_every_panel_and_rule_query_returns_the_columns_it_uses(fleet_bucket: Settings) -> None:
    queries = panel_queries(GRAFANA)
    dashboards = {query.dashboard for query in queries}
    assert {"Fleet risk", "Device drill-down", "Model health", "Pipeline health"} <= dashboards
    assert sum(query.panel_type == "alert" for query in queries) == 5
    problems = []
    with influx_client(fleet_bucket, timeout_ms=60_000) as client:
        device_id = alerted_device(fleet_bucket, client)
        api = client.query_api()
        for query in queries:
            flux = flux_for(
                query,
                bucket=fleet_bucket.influx_bucket,
                start=START,
                stop=START + timedelta(days=DAYS),
                device_id=device_id,
            )
            tables = api.query(flux, org=fleet_bucket.influx_org)
            records = [record for table in tables for record in table.records]
            where = f"{query.dashboard} / {query.title} [{query.ref_id}]"
            if not records:
                problems.append(f"{where}: no rows")
                continue
            missing = query.columns - set(records[0].values)
            if missing:
                problems.append(f"{where}: no column(s) {sorted(missing)}")
    assert problems == []


def test_metric_names_round_trip_exactly_through_reading_points(fleet_bucket: Settings) -> None:
    """Identifiers reach InfluxDB as sent; names it cannot store are left out, not fatal."""
    names = ["smart_5_raw", "a b", "a,b", "a=b", "a\\b", 'q"x', "é °C", "_value", "time", "end\\"]
    reading = Telemetry(
        device_id="round trip,=\\1",
        ts=START,
        device_type="ST 3000",
        metrics={name: float(i) + 0.5 for i, name in enumerate(names)},
    )
    line = reading_line(reading)
    assert line is not None
    with influx_client(fleet_bucket, timeout_ms=60_000) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            fleet_bucket.influx_bucket, fleet_bucket.influx_org, [line]
        )
        flux = (
            f"from(bucket: {flux_string(fleet_bucket.influx_bucket)}) |> range(start: 0)"
            ' |> filter(fn: (r) => r._measurement == "reading"'
            f" and r.device_id == {flux_string(reading.device_id)})"
        )
        tables = client.query_api().query(flux, org=fleet_bucket.influx_org)
    records = [record for table in tables for record in table.records]
    assert {r.get_field(): r.get_value() for r in records} == {
        name: value for name, value in reading.metrics.items() if name not in ("time", "end\\")
    }
    assert {(r.values["device_type"], r.get_time()) for r in records} == {("ST 3000", START)}


def test_a_real_worker_writes_the_rollups_the_dashboards_read(
    deployment: Deployment, backblaze_slice: list[Event]
) -> None:
    """The worker's sink writes device_risk and fleet_risk; every panel answers from them."""
    events = backblaze_slice
    readings = [e for e in events if isinstance(e, Telemetry)]
    deployment.start_worker()
    deployment.replay(events)
    deployment.wait_for_predictions(len(readings))
    settings = deployment.settings
    device_days = {(r.device_id, r.ts.date()) for r in readings}

    # Each reading's raw metrics went out in the flush of its prediction: stored exactly.
    with deployment.client() as client:
        reading_points = (
            f"from(bucket: {flux_string(settings.influx_bucket)}) |> range(start: 0)"
            ' |> filter(fn: (r) => r._measurement == "reading")'
        )
        tables = client.query_api().query(
            reading_points + " |> group() |> count()", org=settings.influx_org
        )
        stored_values = int(tables[0].records[0].get_value()) if tables else 0
        device = readings[0].device_id
        tables = client.query_api().query(
            reading_points + f" |> filter(fn: (r) => r.device_id == {flux_string(device)})",
            org=settings.influx_org,
        )
        stored = {
            (rec.get_time(), rec.get_field()): rec.get_value() for t in tables for rec in t.records
        }
    sent = {
        (r.ts, name): value
        for r in readings
        if r.device_id == device
        for name, value in r.metrics.items()
    }
    assert stored == sent
    assert stored_values == len({(r.device_id, r.ts, name) for r in readings for name in r.metrics})

    def rollups() -> tuple[int, int]:
        with deployment.client() as client:
            device_risk = count_points(
                client, settings, measurement="device_risk", field="risk", start="0"
            )
            flux = (
                f"from(bucket: {flux_string(settings.influx_bucket)}) |> range(start: 0)"
                ' |> filter(fn: (r) => r._measurement == "fleet_risk" and r._field == "readings")'
                " |> group() |> sum()"
            )
            tables = client.query_api().query(flux, org=settings.influx_org)
            counted = int(tables[0].records[0].get_value()) if tables else 0
        return device_risk, counted

    # One device_risk point per device and day; fleet_risk counts every reading once
    # (one worker, no crash: no window is replayed).
    wait_until(
        lambda: rollups() == (len(device_days), len(readings)),
        timeout_s=60,
        what=f"{len(device_days)} device_risk points and {len(readings)} readings in fleet_risk",
    )
    problems = []
    with deployment.client() as client:
        api = client.query_api()
        for query in panel_queries(GRAFANA):
            if query.dashboard not in ("Fleet risk", "Device drill-down"):
                continue
            flux = flux_for(
                query,
                bucket=settings.influx_bucket,
                start=START,
                stop=START + timedelta(days=DAYS),
                device_id=readings[0].device_id,
            )
            tables = api.query(flux, org=settings.influx_org)
            records = [record for table in tables for record in table.records]
            if query.title.startswith("Alerts") or "alert" in query.title.lower():
                continue  # whether the slice raises alerts is the engine's business
            if not records and query.title.startswith("Riskiest"):
                # Empty is right only if no device's last-day risk reaches the floor.
                check = flux.split("|> group()")[0].replace("r._value >= 0.05", "true")
                check += "|> group() |> max()"
                top = [r.get_value() for t in api.query(check, org=settings.influx_org) for r in t]
                if not top or top[0] >= 0.05:
                    problems.append(f"{query.title}: empty, but the last day's top risk is {top}")
                continue
            if not records:
                problems.append(
                    f"{query.dashboard} / {query.title}: no rows from the worker's data"
                )
            elif query.columns - set(records[0].values):
                problems.append(f"{query.dashboard} / {query.title}: missing columns")
    assert problems == []
