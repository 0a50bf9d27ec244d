"""InfluxDB client construction and small query helpers shared by sinks and commands."""

from __future__ import annotations

from influxdb_client.client.influxdb_client import InfluxDBClient

from pipeline.security import influx_options
from pipeline.settings import Settings


def influx_client(settings: Settings, *, timeout_ms: int = 10_000) -> InfluxDBClient:
    """A client for the configured InfluxDB; the token stays inside the client."""
    return InfluxDBClient(
        url=settings.influx_url,
        token=settings.influx_token.get_secret_value(),
        org=settings.influx_org,
        timeout=timeout_ms,
        **influx_options(settings),
        enable_gzip=False,
    )


def flux_string(value: str) -> str:
    """Quote ``value`` as a Flux string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def count_points(
    client: InfluxDBClient,
    settings: Settings,
    *,
    measurement: str,
    field: str,
    start: str = "0",
    tag_filter: dict[str, str] | None = None,
) -> int:
    """Count the points of one field of one measurement, with a Flux query."""
    filters = [f"r._measurement == {flux_string(measurement)}", f"r._field == {flux_string(field)}"]
    filters += [f"r[{flux_string(k)}] == {flux_string(v)}" for k, v in (tag_filter or {}).items()]
    query = (
        f"from(bucket: {flux_string(settings.influx_bucket)})"
        f" |> range(start: {start})"
        f" |> filter(fn: (r) => {' and '.join(filters)})"
        ' |> group() |> count(column: "_value")'
    )
    tables = client.query_api().query(query, org=settings.influx_org)
    return sum(int(record.get_value()) for table in tables for record in table.records)
