"""`forewarn demo` on the real servers: re-runnable, in its own namespace, quiet on the console."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS

from pipeline.cli.stream_cmd import demo_report
from pipeline.demo import DemoSummary
from pipeline.influx import count_points, influx_client
from pipeline.settings import Settings
from pipeline.topics import TOPICS, admin_client
from schemas import Alert
from tests.integration.conftest import BACKBLAZE
from tests.integration.harness import Deployment, wait_until

DEMO = (sys.executable, "-m", "pipeline.cli", "demo", "--path", str(BACKBLAZE))
LIMIT = 4000  # the first 4,000 readings of 2013-04-10: enough for a worker to do real work


def _topics(settings: Settings) -> set[str]:
    admin = admin_client(settings)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _bucket_id(settings: Settings, name: str) -> str | None:
    with influx_client(settings) as client:
        bucket = client.buckets_api().find_bucket_by_name(name)
        return None if bucket is None else str(bucket.id)


@pytest.fixture
def demo_namespace(deployment: Deployment) -> Iterator[str]:
    """A demo namespace of this test only; its topics and bucket are removed afterwards."""
    name = f"t{deployment.run_id}-demo"
    yield name
    settings = deployment.settings
    admin = admin_client(settings)
    try:
        doomed = [topic for topic in admin.list_topics() if topic.startswith(f"{name}.")]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()
    with influx_client(settings) as client:
        bucket = client.buckets_api().find_bucket_by_name(name)
        if bucket is not None:
            client.buckets_api().delete_bucket(bucket)


def _run_demo(
    deployment: Deployment, namespace: str, summary_file: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    env = {**os.environ, **deployment.env(), "FOREWARN_STATE_DIR": str(deployment.state_dir)}
    env.pop("FOREWARN_LOG_FORMAT")  # the demo must stay quiet whatever the user's log settings
    result = subprocess.run(
        [*DEMO, "--namespace", namespace, "--summary-file", str(summary_file), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result, result.stdout + result.stderr


def _unexpected_lines(output: str, summary_file: Path) -> list[str]:
    """Console lines that are neither the demo's own report nor its progress bars."""
    summary = DemoSummary(**json.loads(summary_file.read_text()))
    demo_log = Path(summary.run_dir) / "demo.log"
    ours = set(demo_report(summary, summary_file, demo_log))
    progress = ("events replayed", "Kafka messages processed", "predictions in InfluxDB")
    return [
        line
        for line in output.splitlines()
        if line.strip()
        and line not in ours
        and not line.startswith("Forewarn demo: ")
        and not line.lstrip().startswith(progress)
    ]


def test_demo_runs_twice_in_a_row_without_touching_the_deployment(
    deployment: Deployment, demo_namespace: str, tmp_path: Path
) -> None:
    settings = deployment.settings
    with influx_client(settings) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=settings.influx_bucket,
            org=settings.influx_org,
            record=Point("demo_marker").tag("device_id", "marker").field("risk", 1.0),
        )
    deployment_topics = {settings.topic(spec.name) for spec in TOPICS}
    unprefixed_before = {spec.name for spec in TOPICS} & _topics(settings)

    summaries: list[DemoSummary] = []
    bucket_ids: list[str | None] = []
    for run in (1, 2):
        summary_file = tmp_path / f"summary-{run}.json"
        result, output = _run_demo(deployment, demo_namespace, summary_file, "--limit", str(LIMIT))
        assert result.returncode == 0, output
        assert "Traceback" not in output
        assert _unexpected_lines(output, summary_file) == [], output
        summary = DemoSummary(**json.loads(summary_file.read_text()))
        assert summary.readings == LIMIT
        assert summary.predictions_in_influxdb == LIMIT
        assert summary.influx_bucket == demo_namespace
        assert summary.data_from == "2013-04-10T00:00:00Z"
        assert Path(summary.worker_log).stat().st_size > 0
        assert summary.alerts_equal_backtest is True  # the worker is the backtest's twin
        lines = (summary_file.parent / "demo-alerts.jsonl").read_text().splitlines()
        alerts = [Alert.model_validate_json(line) for line in lines]
        assert len({a.alert_id for a in alerts if a.action == "raise"}) == summary.alerts_raised
        summaries.append(summary)
        bucket_ids.append(_bucket_id(settings, demo_namespace))

    first, second = summaries
    assert first.topic_prefix != second.topic_prefix
    assert bucket_ids[0] != bucket_ids[1], "the second run reuses the first run's bucket"
    assert not Path(first.run_dir).exists(), "the first run's directory was left behind"
    wait_until(
        lambda: not any(topic.startswith(first.topic_prefix) for topic in _topics(settings)),
        timeout_s=60,
        what="the first run's topics to be deleted",
    )
    remaining = _topics(settings)
    assert {second.topic_prefix + spec.name for spec in TOPICS} <= remaining

    # the configured deployment (this test's prefix and bucket) and the unprefixed
    # default deployment's topics are untouched
    assert deployment_topics <= remaining
    assert unprefixed_before <= remaining
    with influx_client(settings) as client:
        marker = count_points(client, settings, measurement="demo_marker", field="risk")
    assert marker == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_demo_that_cannot_reach_influxdb_says_so_in_one_line(
    deployment: Deployment, demo_namespace: str, tmp_path: Path
) -> None:
    env = {**os.environ, **deployment.env(), "FOREWARN_STATE_DIR": str(deployment.state_dir)}
    env["FOREWARN_INFLUX_URL"] = f"http://127.0.0.1:{_closed_port()}"
    summary = str(tmp_path / "summary.json")
    result = subprocess.run(
        [*DEMO, "--namespace", demo_namespace, "--limit", "100", "--summary-file", summary],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("forewarn: error: ")
    assert "InfluxDB" in errors[0]
    assert "make up" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr
