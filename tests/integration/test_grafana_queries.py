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
from pipeline.grafana import flux_for, panel_queries
from pipeline.influx import influx_client
from pipeline.settings import Settings

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
