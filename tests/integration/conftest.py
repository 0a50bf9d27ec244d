"""Fixtures for tests against the real Kafka and InfluxDB that `make up` starts."""

from __future__ import annotations

import socket
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.datasets import Event, open_dataset
from pipeline.settings import Settings, load_settings
from schemas import FailureEvent
from tests.integration.harness import Deployment

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


SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BACKBLAZE = SHARED_DATA / "backblaze" / "backblaze-2013-04-10_2013-05-19.csv.gz"


@pytest.fixture(scope="session")
def backblaze_slice() -> list[Event]:
    """Every failed drive plus one healthy drive in 40 (by a stable hash), in time order."""
    if not BACKBLAZE.exists():
        pytest.fail(f"the shared Backblaze sample is missing: {BACKBLAZE}")
    events = list(open_dataset("backblaze", BACKBLAZE).events())
    failed = {event.device_id for event in events if isinstance(event, FailureEvent)}
    keep = {
        event.device_id
        for event in events
        if event.device_id in failed or zlib.crc32(event.device_id.encode()) % 40 == 0
    }
    return [event for event in events if event.device_id in keep]


@pytest.fixture
def deployment(settings: Settings, tmp_path: Path) -> Iterator[Deployment]:
    """A fresh, isolated deployment (topics, bucket, worker id) on the real servers."""
    with Deployment(settings, tmp_path) as deployment:
        yield deployment
