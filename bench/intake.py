"""What decoding costs the worker per reading: one reading per message vs batches.

    .venv/bin/python bench/intake.py [--limit 100000] [--batch 500] [--repeat 3]

For the first ``--limit`` Backblaze readings, encoded as the producers send them: the
CPU time per reading (best of ``--repeat``) of ``decode`` over one message per reading
(today's path, key checked), and of ``decode_many`` over ``TelemetryBatch`` messages of
``--batch`` readings grouped by partition (placement checked), plus the message sizes.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import topics  # noqa: E402
from pipeline.datasets import open_dataset  # noqa: E402
from pipeline.producer import PartitionBatches  # noqa: E402
from pipeline.streaming.intake import decode, decode_many  # noqa: E402
from schemas import Telemetry  # noqa: E402

BACKBLAZE = REPO.parent / "shared" / "data" / "backblaze" / "backblaze-2013-04-10_2013-05-19.csv.gz"
PARTITIONS = 4  # FOREWARN_TOPIC_PARTITIONS' default


def _best(repeat: int, run: Callable[[], int]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        began = time.process_time()
        run()
        best = min(best, time.process_time() - began)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    readings = []
    for event in open_dataset("backblaze", BACKBLAZE).events():
        if isinstance(event, Telemetry):
            readings.append(event)
            if len(readings) >= args.limit:
                break
    singles = [(r.device_id.encode(), r.model_dump_json().encode()) for r in readings]
    grouping = PartitionBatches(PARTITIONS, max_readings=args.batch, linger_s=1e9)
    batches = []
    for (_key, value), reading in zip(singles, readings, strict=True):
        batches += grouping.add(reading.device_id, value, 0.0)
    batches += grouping.take_all()

    def run_singles() -> int:
        return sum(
            isinstance(decode(topics.TELEMETRY, key, value), Telemetry) for key, value in singles
        )

    def run_batches() -> int:
        return sum(
            isinstance(result, Telemetry)
            for partition, value in batches
            for _, result in decode_many(
                topics.TELEMETRY, None, value, partition=partition, partitions=PARTITIONS
            )
        )

    assert run_singles() == run_batches() == len(readings)
    n = len(readings)
    single_s = _best(args.repeat, run_singles)
    batch_s = _best(args.repeat, run_batches)
    mean_single = sum(len(v) for _, v in singles) / n
    mean_batch = sum(len(v) for _, v in batches) / len(batches)
    print(f"{n:,} Backblaze readings; {len(batches):,} batches of up to {args.batch}")
    print("| path | CPU per reading | readings per CPU-second | message bytes |")
    print("|---|---|---|---|")
    print(
        f"| `decode`, one reading per message | {single_s / n * 1e6:.1f} µs | "
        f"{n / single_s:,.0f} | {mean_single:,.0f} |"
    )
    print(
        f"| `decode_many`, batches | {batch_s / n * 1e6:.1f} µs | "
        f"{n / batch_s:,.0f} | {mean_batch:,.0f} |"
    )


if __name__ == "__main__":
    main()
