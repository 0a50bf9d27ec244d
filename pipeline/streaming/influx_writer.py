"""The async InfluxDB writer behind the sink (influxdb-client's asyncio API)."""

from __future__ import annotations

from typing import cast

from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from pipeline.security import influx_options
from pipeline.settings import Settings

REFUSED_STATUSES = frozenset({400, 413, 422})
"""InfluxDB refuses the points themselves: 400 (unparseable line), 413 (request too
large), 422 (e.g. a field type conflict, a point outside the retention period; the
other points of the batch are stored). Retrying the same batch cannot help; the sink
bisects it instead. Anything else (5xx, timeouts, refused connections) is retried."""


def is_permanent(error: Exception) -> bool:
    """Whether InfluxDB refused the points (``REFUSED_STATUSES``) rather than failed."""
    return isinstance(error, ApiException) and error.status in REFUSED_STATUSES


class InfluxWriter:
    """Writes line protocol to the configured bucket; create it inside the running loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: InfluxDBClientAsync | None = None

    async def __call__(self, lines: list[str]) -> None:
        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self._settings.influx_url,
                token=self._settings.influx_token.get_secret_value(),
                org=self._settings.influx_org,
                timeout=30_000,
                **influx_options(self._settings),
            )
        await self._client.write_api().write(
            bucket=self._settings.influx_bucket,
            org=self._settings.influx_org,
            record="\n".join(lines),
            write_precision=cast(WritePrecision, WritePrecision.NS),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
