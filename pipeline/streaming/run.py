"""Start a worker process: topics, the published-alerts guard, the app, Faust's Worker."""

from __future__ import annotations

from typing import Any

import faust
import structlog

from pipeline import gc_tuning, topics
from pipeline.engine import EngineConfig
from pipeline.security import check_secrets, kafka_options
from pipeline.settings import Settings
from pipeline.streaming.app import create_app
from pipeline.streaming.published import PublishedAlerts
from pipeline.topics import ensure_topics

log = structlog.get_logger(__name__)


def run_worker(settings: Settings, config: EngineConfig) -> None:
    """Run one worker until it is stopped (SIGTERM / Ctrl-C).

    Raises ``ConfigError`` when the deployment still uses the built-in development
    secrets and is not declared a local development deployment.
    """
    check_secrets(settings)
    ensure_topics(settings)
    (settings.state_dir / "worker" / settings.worker_id).mkdir(parents=True, exist_ok=True)
    published = PublishedAlerts.from_topic_tail(
        settings.kafka_bootstrap, settings.topic(topics.ALERTS), options=kafka_options(settings)
    )
    app = create_app(settings, config, published)
    log.info(
        "worker_starting",
        worker=settings.worker_id,
        kafka=settings.kafka_bootstrap,
        influx=settings.influx_url,
        store=settings.table_store,
        partitions=settings.topic_partitions,
    )
    worker: Any = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    gc_tuning.freeze_startup()
    worker.execute_from_commandline()
