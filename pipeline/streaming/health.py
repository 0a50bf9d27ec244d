"""Pipeline and model health, written to InfluxDB for the health dashboards."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from pipeline.streaming.lineprotocol import MODEL_HEALTH, PIPELINE_HEALTH, line

if TYPE_CHECKING:
    from pipeline.streaming.app import Worker

log = structlog.get_logger(__name__)


class HealthReporter:
    """Turns the worker's counters into ``pipeline_health`` and ``model_health`` points."""

    def __init__(self, app: Any, worker: Worker) -> None:
        self._app = app
        self._worker = worker
        self._instance = f"{worker.settings.worker_id}@{socket.gethostname()}"
        self._last_readings = 0
        self._last_time = time.monotonic()

    def consumer_lag(self) -> int:
        """Messages in assigned input partitions not processed yet."""
        lag = 0
        consumer = self._app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            last = self._worker.counters.last_offsets.get((tp.topic, tp.partition), -1)
            lag += max(0, highwater - last - 1)
        return lag

    def lines(self, now: datetime) -> list[str]:
        worker = self._worker
        elapsed = max(time.monotonic() - self._last_time, 1e-6)
        counters = worker.counters
        rate = (counters.readings - self._last_readings) / elapsed
        self._last_readings, self._last_time = counters.readings, time.monotonic()
        try:
            lag = self.consumer_lag()
        except Exception:  # no assignment yet, or the consumer is restarting
            lag = 0
        points = [
            line(
                PIPELINE_HEALTH,
                {"worker": self._instance},
                {
                    "readings_per_second": rate,
                    "readings": counters.readings,
                    "consumer_lag": lag,
                    "rejected": counters.rejected,
                    "duplicates": counters.duplicates,
                    "offset_resets": counters.offset_resets,
                    "partition_changes": counters.partition_changes,
                    "internal_errors": counters.internal_errors,
                    "points_refused": worker.sink.points_refused,
                    "write_errors": worker.sink.write_errors,
                    "buffered_points": worker.sink.buffered,
                    "models_refused": worker.models.refused,
                    "parked": counters.parked,
                    "examples_late": counters.examples_late,
                    "examples_duplicate": counters.examples_duplicate,
                },
                now,
            )
        ]
        report = worker.evaluator.report()
        for group, figures in report["groups"].items():
            fields: dict[str, float | int] = {
                "alerts": int(figures["alerts"]),
                "model_version": worker.model_version(group),
                "labels_positive": worker.counters.labels.get((group, True), 0),
                "labels_negative": worker.counters.labels.get((group, False), 0),
                "drift_events": sum(
                    1 for e in worker.evaluator.drift_events if e["group"] == group
                ),
            }
            for name in ("roc_auc", "fdr", "far"):
                if figures.get(name) is not None:
                    fields[name] = float(figures[name])
            points.append(line(MODEL_HEALTH, {"group": group}, fields, now))
        return points

    async def report(self) -> None:
        points = self.lines(datetime.now(UTC))
        self._worker.sink.add(points)
        counters = self._worker.counters
        log.info("health", readings=counters.readings, rejected=counters.rejected)
