"""How fast can a Faust agent merely iterate over a topic here? The worker's upper bound.

    .venv/bin/python bench/faust_ceiling.py [--messages 60000]

Produces 250-byte messages to a fresh 2-partition topic, then runs one Faust worker
whose agent only counts them, and prints events per second. Needs `make up`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faust
from kafka import KafkaProducer

from pipeline.settings import load_settings
from pipeline.topics import TopicSpec, admin_client, ensure_topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000)
    total = parser.parse_args().messages
    settings = load_settings()
    name = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [TopicSpec(name, "delete", 3_600_000, 1024 * 1024, partitions=2)])
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, batch_size=512 * 1024
    )
    for i in range(total):
        producer.send(name, key=f"d{i % 5000}".encode(), value=b"x" * 250)
    producer.flush()
    producer.close()

    app: Any = faust.App(
        name,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(name, key_serializer="raw", value_serializer="raw")
    seen = 0
    started = 0.0

    @app.agent(source)
    async def count(stream: Any) -> None:
        nonlocal seen, started
        async for _ in stream.events():
            if not seen:
                started = time.monotonic()
            seen += 1
            if seen % 32 == 0:
                await asyncio.sleep(0)
            if seen == total:
                rate = total / (time.monotonic() - started)
                print(f"{rate:,.0f} events/s over {total:,} messages", flush=True)
                admin = admin_client(settings)
                admin.delete_topics([name])
                admin.close()
                os._exit(0)

    worker: Any = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
