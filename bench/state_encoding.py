"""What writing one device record costs in the worker: pickle, seal (pickle + HMAC), size.

Usage: ``.venv/bin/python bench/state_encoding.py [PATH] [--limit N]``

Runs the Backblaze preset through the in-process engine over the first ``--limit``
events (default 150,000), wraps each final state in the ``DeviceRecord`` the worker
stores, and times ``pickle.dumps`` and ``seal`` per record (best of 5 rounds, CPU
time), then the parts of a record on their own.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_throughput import DEFAULT_FILE, drive
from pipeline.backtest import PRESETS
from pipeline.datasets import open_dataset
from pipeline.engine import EngineConfig
from pipeline.streaming.processor import Applied, DeviceRecord
from pipeline.streaming.signing import seal


def per_record_us(records: list[DeviceRecord], work: Callable[[DeviceRecord], object]) -> float:
    """Best of 5 rounds: CPU microseconds of ``work`` per record."""
    rounds = []
    for _ in range(5):
        started = time.process_time()
        for record in records:
            work(record)
        rounds.append((time.process_time() - started) / len(records) * 1e6)
    return min(rounds)


def main() -> None:
    """Measure and print one line per step."""
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--limit", type=int, default=150_000)
    args = parser.parse_args()
    config = EngineConfig(**PRESETS["backblaze"])
    events = itertools.islice(open_dataset("backblaze", args.path).events(), args.limit)
    _, states = drive(events, config, 2)
    read_at = datetime(2013, 4, 10, 12, 30, tzinfo=UTC)
    records = [
        DeviceRecord(state, {"telemetry": Applied(0, 123_456, read_at.timestamp(), 17)}, read_at)
        for state in states.values()
    ]
    key = SecretStr("k" * 32)
    sizes = [len(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)) for record in records]
    print(f"{len(records):,} device records, pickled {statistics.fmean(sizes):,.0f} B on average")
    steps: dict[str, Callable[[DeviceRecord], object]] = {
        "pickle record": lambda r: pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL),
        "seal record (pickle + HMAC)": lambda r: seal(key, r),
        "pickle state alone": lambda r: pickle.dumps(r.state, protocol=pickle.HIGHEST_PROTOCOL),
        "pickle applied offsets": lambda r: pickle.dumps(r.offsets, protocol=5),
        "pickle a UTC datetime": lambda r: pickle.dumps(r.last_reading, protocol=5),
    }
    for name, work in steps.items():
        print(f"{name:32} {per_record_us(records, work):6.2f} µs")


if __name__ == "__main__":
    main()
