"""docs/integration.md's ticketing consumer, run as written against the real Kafka."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipeline import topics
from pipeline.asyncapi import CONTRACTS
from pipeline.partitioner import partition_for
from pipeline.settings import Settings
from pipeline.topics import ensure_topics
from schemas import Alert, Feedback
from tests.integration.harness import Deployment, wait_until
from tests.integration.test_producer import read_records, received_readings

DOC = Path(__file__).resolve().parents[2] / "docs" / "integration.md"


def _snippet(uses: str) -> str:
    """The one python block of docs/integration.md that mentions ``uses``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2, "docs/integration.md should hold two python blocks"
    (block,) = [str(block) for block in blocks if uses in block]
    return block


def _alert(alert_id: str, device_id: str) -> bytes:
    """The AsyncAPI example alert with another id and device, as the worker writes it."""
    example = CONTRACTS["alerts"].example
    assert example is not None
    fields = {**example, "alert_id": alert_id, "device_id": device_id}
    return Alert.model_validate_json(json.dumps(fields)).model_dump_json().encode()


def test_the_ticketing_snippet_deduplicates_and_answers(
    settings: Settings, tmp_path: Path, unique: str, scratch_topics: list[str]
) -> None:
    snippet = _snippet("KafkaConsumer")
    assert len(snippet.strip().splitlines()) <= 35  # as `ruff format` lays it out
    script = tmp_path / "ticketing.py"
    script.write_text(snippet)
    # Kafka only: the deployment's topics, not its InfluxDB bucket.
    deployment = Deployment(settings, tmp_path, run_id=unique)
    scratch_topics.extend(ensure_topics(deployment.settings))
    device = "Z300GQRM"
    first = _alert("a" * 20, device)
    deployment.produce(
        "alerts",
        [
            (device.encode(), first),
            (device.encode(), first),
            (device.encode(), _alert("b" * 20, device)),
        ],
    )
    env = {
        **os.environ,
        **deployment.env(),
        "FOREWARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
    }
    log = tmp_path / "ticketing.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, str(script)], env=env, stdout=out, stderr=subprocess.STDOUT
        )

    def two_answers() -> list[tuple[bytes | None, bytes]]:
        answers = deployment.read_topic("feedback")
        return answers if len(answers) >= 2 else []

    try:
        answers = wait_until(two_answers, timeout_s=90, what="two verdicts on feedback")
    finally:
        process.terminate()
        process.wait(timeout=30)
    verdicts = [Feedback.model_validate_json(value) for _, value in answers]
    assert sorted(v.alert_id for v in verdicts) == ["a" * 20, "b" * 20]
    assert {key for key, _ in answers} == {device.encode()}
    assert all(v.verdict == "confirmed" and v.device_id == device for v in verdicts)
    assert all(v.ts <= datetime.now(UTC) for v in verdicts)
    tickets = [line for line in log.read_text().splitlines() if line.startswith("ticket ")]
    assert len(tickets) == 2, log.read_text()
    assert tickets[0].startswith(f"ticket critical {device}: risk above")


def test_the_producer_snippet_sends_every_reading_once_on_its_partition(
    settings: Settings, tmp_path: Path, unique: str, scratch_topics: list[str]
) -> None:
    snippet = _snippet("TelemetryProducer")
    assert len([line for line in snippet.splitlines() if line.strip()]) <= 15
    script = tmp_path / "gateway.py"
    script.write_text(snippet)
    deployment = Deployment(settings, tmp_path, run_id=unique)
    scratch_topics.extend(ensure_topics(deployment.settings))
    env = {
        **os.environ,
        **deployment.env(),
        "FOREWARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FOREWARN_TOPIC_PARTITIONS": "7",  # the producer must ask the topic (2 partitions)
        "PYTHONPATH": str(DOC.parents[1]),
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    partitions = deployment.settings.topic_partitions
    received = received_readings(deployment.settings, partitions)
    devices = sorted(r.device_id for _, r in received)
    assert devices == [f"host7-{disk}" for disk in ("sda", "sdb", "sdc", "sdd")]
    assert all(partition_for(r.device_id, partitions) == p for p, r in received)
    records = read_records(deployment.settings, deployment.settings.topic(topics.TELEMETRY))
    assert all(record.key is None for record in records)  # batches: no key
