"""What the ``reading`` point costs the sink, beside the ``prediction`` point it joins.

    .venv/bin/python bench/reading_points.py [--limit 100000] [--repeat 3]

For the first ``--limit`` Backblaze readings: the CPU time to render each reading's
``reading`` line and its ``prediction`` line (best of ``--repeat``, per reading), their
size in bytes, and the wall time InfluxDB takes to accept them in the sink's chunks of
5,000 lines (a scratch bucket, removed afterwards). The prediction is built once per
reading with fixed scores: this measures the line protocol and the write, not the engine.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from influxdb_client.client.write_api import SYNCHRONOUS  # noqa: E402

from pipeline.datasets import open_dataset  # noqa: E402
from pipeline.influx import influx_client  # noqa: E402
from pipeline.settings import Settings, load_settings  # noqa: E402
from pipeline.streaming.lineprotocol import prediction_line, reading_line  # noqa: E402
from schemas import Factor, Prediction, Telemetry  # noqa: E402

BACKBLAZE = REPO.parent / "shared" / "data" / "backblaze" / "backblaze-2013-04-10_2013-05-19.csv.gz"
CHUNK = 5_000  # FOREWARN_SINK_BATCH_SIZE's default


def _prediction(reading: Telemetry) -> Prediction:
    return Prediction.model_construct(
        device_id=reading.device_id,
        device_type=reading.device_type,
        group=reading.device_type,
        ts=reading.ts,
        failure_probability=0.01,
        anomaly_score=0.02,
        risk=0.01,
        top_factors=[Factor(feature="smart_5_raw", value=1.0, contribution=0.5)],
        model_version=3,
    )


def _best(repeat: int, render: Callable[[], list[str]]) -> tuple[float, list[str]]:
    best, lines = float("inf"), []
    for _ in range(repeat):
        began = time.perf_counter()
        lines = render()
        best = min(best, time.perf_counter() - began)
    return best, lines


def _write_seconds(settings: Settings, lines: list[str]) -> float:
    bucket_name = f"bench-reading-points-{uuid.uuid4().hex[:8]}"
    with influx_client(settings, timeout_ms=120_000) as client:
        bucket = client.buckets_api().create_bucket(
            bucket_name=bucket_name, org=settings.influx_org
        )
        try:
            writer = client.write_api(write_options=SYNCHRONOUS)
            began = time.perf_counter()
            for start in range(0, len(lines), CHUNK):
                writer.write(bucket_name, settings.influx_org, lines[start : start + CHUNK])
            return time.perf_counter() - began
        finally:
            client.buckets_api().delete_bucket(bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    readings: list[Telemetry] = []
    for event in open_dataset("backblaze", BACKBLAZE).events():
        if isinstance(event, Telemetry):
            readings.append(event)
            if len(readings) >= args.limit:
                break
    predictions = [_prediction(reading) for reading in readings]
    n = len(readings)
    p_s, p_lines = _best(args.repeat, lambda: [prediction_line(p) for p in predictions])
    r_s, r_lines = _best(
        args.repeat, lambda: [line for r in readings if (line := reading_line(r)) is not None]
    )
    settings = load_settings()
    p_write = min(_write_seconds(settings, p_lines) for _ in range(args.repeat))
    r_write = min(_write_seconds(settings, r_lines) for _ in range(args.repeat))
    p_bytes = sum(len(x) + 1 for x in p_lines) / n
    r_bytes = sum(len(x) + 1 for x in r_lines) / n
    print(f"{n:,} Backblaze readings, {sum(len(r.metrics) for r in readings) / n:.1f} metrics each")
    print(
        f"prediction line: {p_s / n * 1e6:5.2f} us to render, {p_bytes:5.0f} bytes, "
        f"InfluxDB accepts {n / p_write:7,.0f}/s"
    )
    print(
        f"reading line:    {r_s / n * 1e6:5.2f} us to render, {r_bytes:5.0f} bytes, "
        f"InfluxDB accepts {n / r_write:7,.0f}/s"
    )
    both = 1 / (1 / (n / p_write) + 1 / (n / r_write))
    print(f"both, one after the other: InfluxDB accepts {both:7,.0f} readings/s")


if __name__ == "__main__":
    main()
