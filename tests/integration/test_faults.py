"""Servers going away under a running worker: Kafka for 20 s, InfluxDB for 60 s.

These tests stop servers, so they run on a private Kafka and InfluxDB of their own
(:mod:`tests.integration.private`), never on the shared ones.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import topics
from pipeline.datasets import Event
from pipeline.settings import Settings
from schemas import Alert, Telemetry
from tests.integration.harness import Deployment, wait_until
from tests.integration.private import PrivateServers

KAFKA_OUTAGE = timedelta(seconds=20)
INFLUX_OUTAGE = timedelta(seconds=60)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServers]:
    servers = PrivateServers.allocate(tmp_path_factory.mktemp("servers"))
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def private_deployment(
    private: PrivateServers, settings: Settings, tmp_path: Path
) -> Iterator[Deployment]:
    with Deployment(private.settings(settings), tmp_path) as deployment:
        yield deployment


def readings(events: list[Event]) -> int:
    return sum(1 for event in events if isinstance(event, Telemetry))


def doubled_alerts(deployment: Deployment) -> list[str]:
    raised = Counter(
        alert.alert_id
        for _, value in deployment.read_topic(topics.ALERTS)
        for alert in [Alert.model_validate_json(value)]
        if alert.action == "raise"
    )
    return [alert_id for alert_id, n in raised.items() if n > 1]


def outage(length: timedelta) -> None:
    """Let ``length`` of wall time pass (the outage itself)."""
    started = datetime.now(UTC)
    wait_until(
        lambda: datetime.now(UTC) - started >= length,
        timeout_s=length.total_seconds() + 10,
        what=f"{length.total_seconds():.0f} s of outage",
    )


def test_kafka_stopped_for_20_s_mid_stream(
    private: PrivateServers,
    private_deployment: Deployment,
    backblaze_slice: list[Event],
    record_property: Callable[[str, object], None],
) -> None:
    deployment = private_deployment
    events = backblaze_slice
    expected = readings(events)
    worker = deployment.start_worker()
    deployment.replay(events[: len(events) // 2])
    wait_until(deployment.count_predictions, timeout_s=180, what="the first predictions")
    private.stop_kafka()
    try:
        outage(KAFKA_OUTAGE)
    finally:
        private.start_kafka()
    back = time.monotonic()
    before = deployment.count_predictions()
    deployment.replay(events[len(events) // 2 :])
    wait_until(
        lambda: deployment.count_predictions() > before,
        timeout_s=180,
        what="the worker to score again after Kafka came back",
    )
    recovery_s = time.monotonic() - back
    deployment.wait_for_predictions(expected, timeout_s=300)
    stored, doubled = deployment.count_predictions(), doubled_alerts(deployment)
    for name, value in (
        ("readings", expected),
        ("lost", expected - stored),
        ("doubled_alerts", len(doubled)),
        ("recovery_s", round(recovery_s, 1)),
    ):
        record_property(name, value)
    assert worker.process.poll() is None, "the worker must recover by itself"
    assert stored == expected
    assert doubled == []
    assert recovery_s < 120


def test_influxdb_down_for_60_s_loses_no_prediction(
    private: PrivateServers,
    private_deployment: Deployment,
    backblaze_slice: list[Event],
    record_property: Callable[[str, object], None],
) -> None:
    deployment = private_deployment
    events = backblaze_slice
    expected = readings(events)
    # Fewer points than the outage produces (about 3 per reading): the worker must wait
    # for InfluxDB, not overflow its buffer (batches of 500 readings once did).
    worker = deployment.start_worker(FOREWARN_SINK_MAX_BUFFERED_POINTS="10000")
    deployment.replay(events[: len(events) // 4])
    wait_until(deployment.count_predictions, timeout_s=180, what="the first predictions")
    private.stop_influxdb()
    try:
        deployment.replay(events[len(events) // 4 :])
        outage(INFLUX_OUTAGE)
    finally:
        private.start_influxdb()
    back = time.monotonic()
    deployment.wait_for_predictions(expected, timeout_s=300)
    caught_up_s = time.monotonic() - back
    stored, doubled = deployment.count_predictions(), doubled_alerts(deployment)
    for name, value in (
        ("readings", expected),
        ("lost", expected - stored),
        ("doubled_alerts", len(doubled)),
        ("caught_up_s", round(caught_up_s, 1)),
    ):
        record_property(name, value)
    assert worker.process.poll() is None
    assert stored == expected
    assert doubled == []
    failures = [e for e in deployment.log_events() if e.get("event") == "influx_write_failed"]
    assert failures, "the worker should have seen the outage"
