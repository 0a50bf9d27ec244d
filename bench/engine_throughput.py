"""Engine throughput on one core: readings per CPU second, with and without reading the file.

Usage: ``.venv/bin/python bench/engine_throughput.py [PATH] [--limit N] [--fleet-model NAME]``

Runs the Backblaze preset through the ``InProcessEngine`` (lanes of partition-local
state, epoch training: features, scoring, alert policy, label join and learning
included; no evaluation) with ``--partitions`` lanes (default 4), first from
events already in memory (engine only), then straight from the gzipped CSV (reader +
engine). CPU time (``time.process_time``) is reported beside wall time because the
build machines are shared.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import statistics
import time
from collections.abc import Iterable
from pathlib import Path

from pipeline import gc_tuning
from pipeline.backtest import PRESETS
from pipeline.backtest.driver import peak_rss_mb
from pipeline.datasets import Event, open_dataset
from pipeline.engine import DeviceState, EngineConfig
from pipeline.engine.inprocess import InProcessEngine
from schemas import Telemetry

DEFAULT = Path(__file__).resolve().parents[2] / "shared/data/backblaze"
DEFAULT_FILE = DEFAULT / "backblaze-2013-04-10_2013-05-19.csv.gz"


def drive(
    events: Iterable[Event], config: EngineConfig, partitions: int
) -> tuple[int, dict[str, DeviceState]]:
    """The in-process engine over ``events``; returns readings and final states."""
    engine = InProcessEngine(config, partitions)
    readings = 0
    for event in events:
        if engine.refusal(event) is None:
            engine.feed(event)
            readings += isinstance(event, Telemetry)
    engine.finish()
    return readings, engine.states


def main() -> None:
    """Measure and print one line per mode."""
    parser = argparse.ArgumentParser()
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--fleet-model", default=EngineConfig.fleet_model)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    gc_tuning.tune()  # as the forewarn command does
    config = EngineConfig(**PRESETS["backblaze"], fleet_model=args.fleet_model)
    dataset = open_dataset("backblaze", args.path)

    cpu, wall = time.process_time(), time.perf_counter()
    events = list(itertools.islice(dataset.events(), args.limit))
    read_cpu = time.process_time() - cpu
    cpu, wall = time.process_time(), time.perf_counter()
    readings, states = drive(events, config, args.partitions)
    engine_cpu, engine_wall = time.process_time() - cpu, time.perf_counter() - wall
    del events
    sizes = [len(pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)) for s in states.values()]
    print(
        f"engine only:     {readings:,} readings, {readings / engine_cpu:,.0f} readings/CPU-s "
        f"({readings / engine_wall:,.0f}/wall-s); reader alone {readings / read_cpu:,.0f}/CPU-s"
    )
    print(
        f"state: mean {statistics.fmean(sizes):,.0f} B, max {max(sizes):,} B per device "
        f"({len(sizes):,} devices)"
    )
    cpu, wall = time.process_time(), time.perf_counter()
    readings, _ = drive(itertools.islice(dataset.events(), args.limit), config, args.partitions)
    total_cpu, total_wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"reader + engine: {readings / total_cpu:,.0f} readings/CPU-s "
        f"({readings / total_wall:,.0f}/wall-s); peak RSS {peak_rss_mb():,.0f} MB"
    )


if __name__ == "__main__":
    main()
