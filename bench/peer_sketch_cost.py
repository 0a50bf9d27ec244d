"""CPU cost per reading of the explainer's peer sketch, the only per-reading work it adds.

    .venv/bin/python bench/peer_sketch_cost.py [PATH] [--limit 300000]

Feeds every ``SAMPLE_EVERY``-th reading of the file to a ``PeerSketch`` as the scorer
does and prints the CPU microseconds per reading (all readings counted).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.datasets import open_dataset
from pipeline.engine.explain import SAMPLE_EVERY, PeerSketch
from schemas import Telemetry

DEFAULT_FILE = (
    Path(__file__).resolve().parents[2]
    / "shared/data/backblaze/backblaze-2013-04-10_2013-05-19.csv.gz"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--limit", type=int, default=300_000)
    args = parser.parse_args()
    events = open_dataset("backblaze", args.path).events()
    readings = [e for e in itertools.islice(events, args.limit) if isinstance(e, Telemetry)]
    sketch = PeerSketch()
    started = time.process_time()
    for i, reading in enumerate(readings):
        if not i % SAMPLE_EVERY:
            sketch.add(reading.device_type, reading.metrics)
    seconds = time.process_time() - started
    metrics = len(readings[0].metrics) if readings else 0
    print(
        f"{len(readings):,} readings of {metrics} metrics: "
        f"{seconds / max(len(readings), 1) * 1e6:.2f} µs CPU per reading"
    )


if __name__ == "__main__":
    main()
