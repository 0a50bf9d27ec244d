"""Fixtures for tests against the real Kafka and InfluxDB that `make up` starts."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from pipeline.settings import Settings, load_settings

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The deployment under test; its servers must be up (this fails loudly otherwise)."""
    settings = load_settings()
    kafka = urlsplit(f"//{settings.kafka_bootstrap.split(',')[0]}")
    influx = urlsplit(settings.influx_url)
    missing = [
        name
        for name, host, port in (
            ("Kafka", kafka.hostname, kafka.port or 9092),
            ("InfluxDB", influx.hostname, influx.port or 8086),
        )
        if not _listening(host or "127.0.0.1", port)
    ]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not running: start them with `make up`")
    return settings


@pytest.fixture
def unique() -> str:
    """A fresh suffix for topic names, tags and ids, so tests never see each other's data."""
    return uuid.uuid4().hex[:12]


def wait_for(
    condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.2, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout_s``."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return
        time.sleep(interval_s)  # polling an external condition, bounded by the deadline
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what or 'condition'}")


@pytest.fixture
def scratch_topics(settings: Settings) -> Iterator[list[str]]:
    """Topics created by a test, deleted afterwards."""
    created: list[str] = []
    yield created
    if created:
        from pipeline.topics import admin_client

        admin = admin_client(settings)
        try:
            admin.delete_topics(created)
        finally:
            admin.close()
