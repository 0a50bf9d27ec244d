"""docs/integration.md's ticketing consumer, run as written against the real Kafka."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from pipeline.asyncapi import CONTRACTS
from pipeline.settings import Settings
from pipeline.topics import ensure_topics
from schemas import Alert, Feedback
from tests.integration.harness import Deployment, wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "integration.md"


def _snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/integration.md should hold exactly one python block"
    return str(blocks[0])


def _alert(alert_id: str, device_id: str) -> bytes:
    """The AsyncAPI example alert with another id and device, as the worker writes it."""
    example = CONTRACTS["alerts"].example
    assert example is not None
    fields = {**example, "alert_id": alert_id, "device_id": device_id}
    return Alert.model_validate_json(json.dumps(fields)).model_dump_json().encode()


def test_the_ticketing_snippet_deduplicates_and_answers(
    settings: Settings, tmp_path: Path, unique: str, scratch_topics: list[str]
) -> None:
    snippet = _snippet()
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
