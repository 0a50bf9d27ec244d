"""Streaming benchmarks on the real servers: worker throughput and produce-to-stored latency.

    .venv/bin/python bench/streaming.py throughput [--limit N] [--single]
    .venv/bin/python bench/streaming.py latency [--rate 1000] [--seconds 60]

``throughput`` pre-produces the sample (in ``TelemetryBatch`` messages of up to 500
readings per partition, or one reading per message with ``--single``), then times one
worker through all of it and counts the worker's CPU seconds (process and children).

Each run uses an isolated deployment (its own topic prefix, bucket and worker) on the
servers that `make up` started, and removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from pipeline.datasets import open_dataset  # noqa: E402
from pipeline.influx import flux_string  # noqa: E402
from pipeline.replay import Pace, replay  # noqa: E402
from pipeline.settings import load_settings  # noqa: E402
from schemas import FailureEvent, Telemetry  # noqa: E402
from tests.integration.harness import Deployment  # noqa: E402

BACKBLAZE = REPO.parent / "shared" / "data" / "backblaze" / "backblaze-2013-04-10_2013-05-19.csv.gz"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def throughput(limit: int | None, *, batch: bool = True) -> dict[str, float | str]:
    """Pre-produce the Backblaze sample, then time one worker through all of it."""
    events = list(open_dataset("backblaze", BACKBLAZE).events())
    if limit is not None:
        events = events[:limit]
    readings = sum(1 for event in events if not isinstance(event, FailureEvent))
    with tempfile.TemporaryDirectory() as tmp, Deployment(load_settings(), Path(tmp)) as deployment:
        replay(deployment.settings, events, batch=batch)
        started = time.monotonic()
        worker = deployment.start_worker()
        first: float | None = None
        while True:
            stored = deployment.count_predictions()
            if stored and first is None:
                first = time.monotonic()
            print(f"\r{stored:,}/{readings:,} stored", end="", file=sys.stderr, flush=True)
            if stored >= readings:
                break
            time.sleep(2.0)  # polling InfluxDB
        done = time.monotonic()
        cpu = cpu_seconds(worker.process.pid)
    print(file=sys.stderr)
    assert first is not None
    return {
        "input": "batched" if batch else "single",
        "readings": readings,
        "worker_cpu_seconds": round(cpu, 1),
        "readings_per_worker_cpu_second": round(readings / cpu, 1),
        "seconds_from_start": round(done - started, 1),
        "readings_per_second_from_start": round(readings / (done - started), 1),
        "readings_per_second_after_first_point": round(readings / (done - first), 1),
    }


def latency(rate: float, seconds: float) -> dict[str, float | str]:
    """Produce synthetic readings at ``rate``/s; time until each one's point is readable."""
    base = datetime(2001, 1, 1, tzinfo=UTC)  # Flux ranges stop at now(): stay in the past
    total = int(rate * seconds)
    events = [
        Telemetry(
            device_id=f"bench-{i % 500}",
            ts=base + timedelta(seconds=i),
            device_type="BENCH",
            metrics={"smart_5_raw": float(i % 7 == 0), "smart_9_raw": float(i)},
        )
        for i in range(total)
    ]
    produced_at: dict[int, float] = {}

    def stamped() -> object:
        for i, event in enumerate(events):
            produced_at[i] = time.monotonic()
            yield event

    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, Deployment(load_settings(), Path(tmp)) as deployment:
        deployment.start_worker()
        deployment.replay(events[:200])  # warm-up: worker joined and writing
        deployment.wait_for_predictions(200, timeout_s=120)
        import threading

        producer = threading.Thread(
            target=lambda: replay(deployment.settings, stamped(), pace=Pace(rate=rate))  # type: ignore[arg-type]
        )
        producer.start()
        seen = set(range(200))
        lowest_unseen = 200
        cursor = base + timedelta(seconds=lowest_unseen)
        with deployment.client() as client:
            give_up = time.monotonic() + seconds + 120
            while len(seen) < total and time.monotonic() < give_up:
                query = (
                    f"from(bucket: {flux_string(deployment.settings.influx_bucket)})"
                    f" |> range(start: {cursor:%Y-%m-%dT%H:%M:%SZ}, stop: 2002-01-01T00:00:00Z)"
                    ' |> filter(fn: (r) => r._measurement == "prediction" and r._field == "risk")'
                    ' |> keep(columns: ["_time"])'
                )
                now = time.monotonic()
                for table in client.query_api().query(query, org=deployment.settings.influx_org):
                    for record in table.records:
                        i = int((record.get_time() - base).total_seconds())
                        if i not in seen and i in produced_at:
                            seen.add(i)
                            latencies.append(now - produced_at[i])
                while lowest_unseen in seen:
                    lowest_unseen += 1
                cursor = base + timedelta(seconds=lowest_unseen)
                time.sleep(0.05)  # polling InfluxDB
        producer.join()
    latencies.sort()
    return {
        "rate": rate,
        "readings": total,
        "measured": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--limit", type=int, default=None)
    t.add_argument("--single", action="store_true", help="one reading per message")
    lat = sub.add_parser("latency")
    lat.add_argument("--rate", type=float, default=1000.0)
    lat.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    result = (
        throughput(args.limit, batch=not args.single)
        if args.mode == "throughput"
        else latency(args.rate, args.seconds)
    )
    print(json.dumps(result, indent=2))  # the benchmark's report, for docs/benchmarks.md


if __name__ == "__main__":
    main()
