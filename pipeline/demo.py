"""The demo: one worker, the Backblaze sample replayed through Kafka, a summary at the end.

Everything here is orchestration of real pieces: the worker is a separate
``forewarn worker`` process, the data goes through Kafka, the prediction count comes
from a Flux query, the alerts from the ``alerts`` topic.

A demo run lives in a namespace of its own (:class:`DemoNamespace`): fresh topics
``<namespace>.<run>.<topic>``, the bucket ``<namespace>`` (dropped and created again)
and a run directory for the worker's state and logs. Starting a run removes the
namespace's previous runs and nothing else, so ``make demo`` can run any number of
times in a row and never touches the configured deployment's topics or bucket.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import structlog
from influxdb_client.client.exceptions import InfluxDBError
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, UnknownTopicOrPartitionError
from pydantic import ValidationError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from pipeline import topics
from pipeline.datasets import Dataset, Event
from pipeline.engine import EngineConfig
from pipeline.engine.inprocess import alerts_of
from pipeline.errors import ConfigError, ForewarnError
from pipeline.influx import count_points, flux_string, influx_client
from pipeline.replay import ReplayStats, replay
from pipeline.security import check_secrets, kafka_options
from pipeline.settings import Settings
from pipeline.topics import admin_client, ensure_topics
from schemas import Alert, FailureEvent

log = structlog.get_logger(__name__)

EPOCH = "1970-01-01T00:00:00Z"
DEFAULT_NAMESPACE = "forewarn-demo"
_NAMESPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class DemoNamespace:
    """Where one demo run lives, apart from the configured deployment.

    ``name`` is the namespace (``--namespace``, lower-case letters, digits and ``-``);
    ``run`` names this run. Topics are ``<name>.<run>.<topic>``, the InfluxDB bucket is
    ``<name>``, the worker (Faust app and consumer group) is ``<name>.<run>``, files go
    under ``<state dir>/demo/<name>/<run>/``.
    """

    name: str
    run: str

    @classmethod
    def fresh(cls, name: str = DEFAULT_NAMESPACE, *, now: datetime | None = None) -> DemoNamespace:
        """A new run in namespace ``name``; ``ConfigError`` naming ``--namespace`` if invalid."""
        if not _NAMESPACE_NAME.fullmatch(name):
            raise ConfigError(
                f"--namespace must be 1-63 lower-case letters, digits or '-', "
                f"starting with a letter or digit; got {name!r}"
            )
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
        return cls(name, f"{stamp}-{uuid.uuid4().hex[:4]}")

    @property
    def topic_prefix(self) -> str:
        return f"{self.name}.{self.run}."

    def owns_topic(self, topic: str) -> bool:
        """Whether ``topic`` belongs to some run of this namespace (this one or an older one)."""
        return topic.startswith(f"{self.name}.")

    def home(self, base: Settings) -> Path:
        """The directory holding every run of this namespace."""
        return base.state_dir / "demo" / self.name

    @contextmanager
    def exclusive(self, base: Settings) -> Iterator[None]:
        """Hold this namespace for one run; ``ConfigError`` if another run holds it.

        A second demo in the same namespace would delete the first one's topics and
        bucket under it, so it is refused (an advisory ``flock`` on the namespace's
        directory: released by the kernel however the holder ends).
        """
        home = self.home(base)
        home.mkdir(parents=True, exist_ok=True)
        with open(home / "demo.lock", "a+", encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise ConfigError(
                    f"another forewarn demo is running in namespace {self.name} (pid {holder}): "
                    "wait for it to finish, or give this run its own --namespace"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            yield

    def run_dir(self, base: Settings) -> Path:
        """This run's directory: the worker's state, ``worker.log`` and ``demo.log``."""
        return self.home(base) / self.run

    def settings(self, base: Settings) -> Settings:
        """``base`` moved into this run's topics, bucket, worker id and state directory."""
        return base.model_copy(
            update={
                "topic_prefix": self.topic_prefix,
                "influx_bucket": self.name,
                "worker_id": f"{self.name}.{self.run}",
                "state_dir": self.run_dir(base),
            }
        )

    def worker_env(self, base: Settings) -> dict[str, str]:
        """The environment that puts a ``forewarn worker`` into this run."""
        settings = self.settings(base)
        return {
            "FOREWARN_TOPIC_PREFIX": settings.topic_prefix,
            "FOREWARN_INFLUX_BUCKET": settings.influx_bucket,
            "FOREWARN_WORKER_ID": settings.worker_id,
            "FOREWARN_STATE_DIR": str(settings.state_dir),
            "FOREWARN_LOG_FORMAT": "json",
        }

    def check_apart_from(self, base: Settings) -> None:
        """``ConfigError`` if this namespace would touch the configured deployment."""
        if base.influx_bucket == self.name:
            raise ConfigError(
                f"--namespace {self.name} is the configured deployment's bucket "
                "(FOREWARN_INFLUX_BUCKET); the demo would drop it: choose another namespace"
            )
        if self.owns_topic(base.topic_prefix):
            raise ConfigError(
                f"--namespace {self.name} covers the configured deployment's topics "
                f"(FOREWARN_TOPIC_PREFIX={base.topic_prefix}): choose another namespace"
            )


@dataclass
class DemoSummary:
    """What a person needs to judge the run; also written as ``demo-summary.json``."""

    dataset: str
    namespace: str = ""
    topic_prefix: str = ""
    influx_bucket: str = ""
    data_from: str | None = None
    data_to: str | None = None
    readings: int = 0
    predictions_in_influxdb: int = 0
    alerts_raised: int = 0
    devices_alerted: int = 0
    failures: int = 0
    failures_detected: int = 0
    lead_days: list[float] = field(default_factory=list)
    median_lead_days: float | None = None
    false_alarm_devices: int = 0
    rejected: int = 0
    readings_per_second: float = 0.0
    wall_seconds: float = 0.0
    stop_seconds: float = 0.0
    horizon_days: float = 14.0
    run_dir: str = ""
    worker_log: str = ""
    partitions: int = 0
    backtest_alerts_raised: int = 0
    backtest_failures_detected: int = 0
    backtest_false_alarm_devices: int = 0
    alerts_equal_backtest: bool | None = None
    """Whether the set of (alert id, action) the worker published is the backtest's."""
    alerts_only_streamed: int = 0
    alerts_only_backtest: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class WorkerProcess:
    """A ``forewarn worker`` child process with its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "worker"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            reason = self.last_error()
            raise ForewarnError(
                f"the worker exited with code {self.process.returncode}: {reason} (log: "
                f"{self.log_path})"
                if reason
                else f"the worker exited with code {self.process.returncode}; "
                f"the end of its log says why: {self.log_path}"
            )

    def last_error(self) -> str | None:
        """The worker's own one-line error (``forewarn: error: …``), if its log ends with one."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-50:]
        except OSError:
            return None
        errors = [line for line in lines if line.startswith("forewarn: error: ")]
        return errors[-1].removeprefix("forewarn: error: ") if errors else None

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("worker_killed", after_s=timeout_s, log=str(self.log_path))
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout_s)
        self._log.close()


def first_line(error: BaseException) -> str:
    """``"<type>: <first line of the message>"``, at most 240 characters, for one-line errors."""
    name = type(error).__name__
    status, reason = getattr(error, "status", None), getattr(error, "reason", None)
    if isinstance(error, InfluxDBError) and status is not None:
        return f"{name}: HTTP {status} {reason or ''}".strip()
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    while line.startswith(name):  # kafka-python's errors repeat their own name
        line = line[len(name) :].lstrip(": ")
    return f"{name}: {line}"[:240] if line else name


@contextmanager
def server_step(doing: str, settings: Settings) -> Iterator[None]:
    """Turn a Kafka or InfluxDB failure during ``doing`` into a one-line ``ForewarnError``."""
    try:
        yield
    except ForewarnError:
        raise
    except KafkaError as error:
        raise ForewarnError(
            f"{doing}: Kafka at {settings.kafka_bootstrap} failed ({first_line(error)}); "
            "check the servers with `make status` (start them with `make up`)"
        ) from error
    except (InfluxDBError, Urllib3Error) as error:
        raise ForewarnError(
            f"{doing}: InfluxDB at {settings.influx_url} failed ({first_line(error)}); "
            "check the servers with `make status` (start them with `make up`), "
            "then `forewarn doctor`"
        ) from error


def reset_namespace(base: Settings, namespace: DemoNamespace) -> list[str]:
    """Remove the namespace's earlier runs; create this run's topics and an empty bucket.

    The bucket ``namespace.name`` is dropped and created again (infinite retention:
    replayed data is years old; dropping a bucket does not grow with its size the way
    deleting its points does), earlier runs' topics are deleted (Kafka finishes that in
    the background; this run's topics have other names, so nothing waits for it) and
    the earlier run directories are removed. Returns the topics created.
    """
    namespace.check_apart_from(base)
    started = time.monotonic()
    with (
        server_step(f"recreating the InfluxDB bucket {namespace.name!r}", base),
        influx_client(base, timeout_ms=120_000) as client,
    ):
        buckets = client.buckets_api()
        bucket = buckets.find_bucket_by_name(namespace.name)
        if bucket is not None:
            buckets.delete_bucket(bucket)
        buckets.create_bucket(bucket_name=namespace.name, org=base.influx_org)
    with server_step("removing the previous demo's topics", base):
        admin = admin_client(base)
        try:
            old = sorted(topic for topic in admin.list_topics() if namespace.owns_topic(topic))
            if old:
                try:
                    admin.delete_topics(old)
                except UnknownTopicOrPartitionError:
                    log.info("demo_topics_already_deleting", topics=len(old))
        finally:
            admin.close()
        log.info("demo_old_topics_deleted", namespace=namespace.name, topics=len(old))
    run_settings = namespace.settings(base)
    with server_step("creating the demo's topics", base):
        created = ensure_topics(run_settings)
    home = namespace.home(base)
    if home.is_dir():
        for old_run in home.iterdir():
            if old_run.is_dir() and old_run.name != namespace.run:
                shutil.rmtree(old_run, ignore_errors=True)
    log.info(
        "demo_reset",
        namespace=namespace.name,
        run=namespace.run,
        topics=len(created),
        seconds=round(time.monotonic() - started, 2),
    )
    return created


@dataclass
class _Observed:
    """What the demo saw go by while replaying: failures and the data's time range."""

    failures: dict[str, datetime] = field(default_factory=dict)
    first_ts: datetime | None = None
    last_ts: datetime | None = None

    def watch(self, events: Iterable[Event]) -> Iterator[Event]:
        for event in events:
            if self.first_ts is None:
                self.first_ts = event.ts
            self.last_ts = event.ts
            if isinstance(event, FailureEvent):
                self.failures[event.device_id] = event.ts
            yield event


def read_alerts(settings: Settings, timeout_s: float = 30.0) -> list[Alert]:
    """Every alert on the topic (committed), oldest first."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_options(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    alerts: list[Alert] = []
    try:
        partitions = [
            TopicPartition(settings.topic(topics.ALERTS), p)
            for p in sorted(consumer.partitions_for_topic(settings.topic(topics.ALERTS)) or ())
        ]
        if not partitions:
            raise UnknownTopicOrPartitionError(settings.topic(topics.ALERTS))
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up and any(
            consumer.position(tp) < end[tp] for tp in partitions
        ):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        alerts.append(Alert.model_validate_json(record.value))
                    except ValidationError:
                        log.warning("unreadable_alert", offset=record.offset)
    finally:
        consumer.close()
    return sorted(alerts, key=lambda alert: (alert.ts, alert.device_id))


def count_messages(settings: Settings, topic: str) -> int:
    """Messages currently on ``topic`` (end minus beginning offsets)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, **kafka_options(settings)
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        end = consumer.end_offsets(partitions)
        begin = consumer.beginning_offsets(partitions)
    finally:
        consumer.close()
    return sum(end[tp] - begin[tp] for tp in partitions)


class BacktestTwin:
    """``forewarn backtest`` of the same input and settings, run beside the worker: its
    alerts only (``alerts_of``), which leaves more of the machine to the worker."""

    def __init__(
        self, dataset: Dataset, config: EngineConfig, *, partitions: int, limit: int | None
    ) -> None:
        self.alerts: list[Alert] | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                events: Iterable[Event] = dataset.events()
                if limit is not None:
                    events = itertools.islice(events, limit)
                self.alerts = alerts_of(events, config, partitions)
            except BaseException as error:  # reported by result(), on the main thread
                self.error = error

        self._thread = threading.Thread(target=run, name="backtest-twin", daemon=True)
        self._thread.start()

    def result(self) -> list[Alert]:
        """The backtest's alerts (waits for it); raises what the backtest raised."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.alerts is not None
        return self.alerts


def alert_keys(alerts: Iterable[Alert]) -> set[tuple[str, str]]:
    """What two runs must agree on: every (alert id, action)."""
    return {(alert.alert_id, alert.action) for alert in alerts}


def read_alerts_settled(
    settings: Settings, expected: set[tuple[str, str]], settle_s: float
) -> list[Alert]:
    """The alerts topic once it holds ``expected``, or once it stopped changing for
    ``settle_s`` (a worker applies the failures dated after its partitions' last
    readings when they go idle, some seconds after the input ends)."""
    alerts = read_alerts(settings)
    stable_since = time.monotonic()
    while alert_keys(alerts) != expected and time.monotonic() - stable_since < settle_s:
        time.sleep(1.0)  # polling the topic, bounded by settle_s
        again = read_alerts(settings)
        if len(again) != len(alerts):
            stable_since = time.monotonic()
        alerts = again
    return alerts


def write_alerts(alerts: Iterable[Alert], path: Path) -> None:
    """One ``Alert`` JSON per line, as on the topic (``demo-alerts.jsonl``)."""
    with path.open("w") as out:
        for alert in alerts:
            out.write(alert.model_dump_json() + "\n")


SETTLE_S = 20.0
"""How long the alerts topic must stay unchanged before the demo stops waiting for the
backtest's alerts (twice a worker's idle delay)."""


def score_alerts(
    summary: DemoSummary, alerts: list[Alert], failures: dict[str, datetime], horizon: timedelta
) -> None:
    """Detections, lead times and false alarms from the raised alerts."""
    raises: dict[str, list[datetime]] = {}
    seen: set[str] = set()
    for alert in alerts:
        if alert.action == "raise" and alert.alert_id not in seen:
            seen.add(alert.alert_id)
            raises.setdefault(alert.device_id, []).append(alert.ts)
    summary.alerts_raised = len(seen)
    summary.devices_alerted = len(raises)
    leads = []
    for device_id, failed_at in failures.items():
        in_window = [
            ts for ts in raises.get(device_id, []) if failed_at - horizon <= ts <= failed_at
        ]
        if in_window:
            leads.append((failed_at - min(in_window)).total_seconds() / 86400)
    summary.failures = len(failures)
    summary.failures_detected = len(leads)
    summary.lead_days = sorted(round(lead, 2) for lead in leads)
    summary.median_lead_days = statistics.median(leads) if leads else None
    summary.false_alarm_devices = sum(1 for device in raises if device not in failures)


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts is not None else None


class _StallWatch:
    """Notices when a count has stopped growing for ``limit_s`` seconds."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.best = -1
        self._since = time.monotonic()

    def stalled(self, count: int) -> bool:
        if count > self.best:
            self.best, self._since = count, time.monotonic()
        return time.monotonic() - self._since > self.limit_s


def _input_ends(settings: Settings) -> dict[TopicPartition, int]:
    """End offsets of the worker's input topics that the replay wrote to."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    try:
        partitions = [
            TopicPartition(settings.topic(name), p)
            for name in (topics.TELEMETRY, topics.FAILURES)
            for p in sorted(consumer.partitions_for_topic(settings.topic(name)) or ())
        ]
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
    finally:
        consumer.close()
    return ends


def _wait_for_commits(
    settings: Settings,
    worker: WorkerProcess,
    on_processed: Callable[[int, int], None],
    stall_timeout_s: float,
) -> None:
    """Wait until the worker has committed every replayed message.

    The worker commits an input offset only after the message's points are in InfluxDB
    and its outputs in Kafka (docs/streaming.md), so its consumer group's committed
    offsets are a cheap progress count; a Flux count of every point, polled, would
    load InfluxDB while it is busy storing them.
    """
    ends = _input_ends(settings)
    total = sum(ends.values())
    watch = _StallWatch(stall_timeout_s)
    offsets = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.group_id,  # reads the group's commits; never joins it
        enable_auto_commit=False,
    )
    try:
        while True:
            worker.check_alive()
            done = sum(min(offsets.committed(tp) or 0, end) for tp, end in ends.items())
            on_processed(done, total)
            if done >= total:
                return
            if watch.stalled(done):
                raise ForewarnError(
                    f"the worker has processed {done:,} of {total:,} messages and no more "
                    f"for {stall_timeout_s:.0f} s; its log says why: {worker.log_path}"
                )
            time.sleep(1.0)  # polling committed offsets, bounded by the stall limit
    finally:
        offsets.close()


def _wait_for_predictions(
    settings: Settings,
    worker: WorkerProcess,
    expected: int,
    on_stored: Callable[[int, int], None],
    stall_timeout_s: float,
) -> int:
    """Poll the Flux count until ``expected`` predictions are stored; return the count.

    Gives up with a one-line error once the count has not grown for ``stall_timeout_s``.
    A count query that times out is retried at the next poll.
    """
    stored = 0
    watch = _StallWatch(stall_timeout_s)
    with influx_client(settings, timeout_ms=60_000) as client:
        while True:
            worker.check_alive()
            try:
                stored = count_points(
                    client, settings, measurement="prediction", field="risk", start=EPOCH
                )
            except Urllib3Timeout as error:
                log.info("prediction_count_timed_out", error=first_line(error))
            on_stored(stored, expected)
            if stored >= expected:
                return stored
            if watch.stalled(stored):
                raise ForewarnError(
                    f"only {stored:,} of {expected:,} predictions stored, none new for "
                    f"{stall_timeout_s:.0f} s; the worker's log says why: {worker.log_path}"
                )
            time.sleep(3.0)  # polling InfluxDB, bounded by the stall limit


def run_demo(
    base: Settings,
    dataset: Dataset,
    *,
    namespace: DemoNamespace,
    horizon: timedelta,
    on_replay: Callable[[ReplayStats], None],
    on_processed: Callable[[int, int], None],
    on_stored: Callable[[int, int], None],
    config: EngineConfig,
    alerts_file: Path,
    limit: int | None = None,
    stall_timeout_s: float = 180.0,
    worker_stop_timeout_s: float = 10.0,
) -> DemoSummary:
    """Reset the namespace, start a worker, replay, wait for every prediction, summarise,
    and compare the alerts with the backtest of the same input (``alerts_file``: every
    alert read back, one JSON per line).

    ``limit`` replays only the dataset's first ``limit`` messages (readings and
    failures). ``wall_seconds`` is the demo's work from the reset to the last count;
    ``stop_seconds`` the worker's shutdown after it. Every expected failure is a
    one-line ``ForewarnError``.
    """
    started = time.monotonic()
    settings = namespace.settings(base)
    check_secrets(settings)  # the worker would refuse them, after the replay
    summary = DemoSummary(
        dataset=dataset.name,
        namespace=namespace.name,
        topic_prefix=settings.topic_prefix,
        influx_bucket=settings.influx_bucket,
        horizon_days=horizon.total_seconds() / 86400,
        run_dir=str(namespace.run_dir(base)),
        partitions=settings.topic_partitions,
    )
    with namespace.exclusive(base):
        return _run(
            base,
            dataset,
            namespace,
            summary,
            started,
            horizon=horizon,
            on_replay=on_replay,
            on_processed=on_processed,
            on_stored=on_stored,
            config=config,
            alerts_file=alerts_file,
            limit=limit,
            stall_timeout_s=stall_timeout_s,
            worker_stop_timeout_s=worker_stop_timeout_s,
        )


def _run(
    base: Settings,
    dataset: Dataset,
    namespace: DemoNamespace,
    summary: DemoSummary,
    started: float,
    *,
    horizon: timedelta,
    on_replay: Callable[[ReplayStats], None],
    on_processed: Callable[[int, int], None],
    on_stored: Callable[[int, int], None],
    config: EngineConfig,
    alerts_file: Path,
    limit: int | None,
    stall_timeout_s: float,
    worker_stop_timeout_s: float,
) -> DemoSummary:
    settings = namespace.settings(base)
    reset_namespace(base, namespace)
    log_path = namespace.run_dir(base) / "worker.log"
    summary.worker_log = str(log_path)
    worker = WorkerProcess(namespace.worker_env(base), log_path)
    try:
        observed = _Observed()
        events: Iterable[Event] = dataset.events()
        if limit is not None:
            events = itertools.islice(events, limit)
        replay_started = time.monotonic()
        with server_step("replaying the dataset into Kafka", settings):
            stats = replay(settings, observed.watch(events), on_progress=on_replay)
        twin = BacktestTwin(dataset, config, partitions=settings.topic_partitions, limit=limit)
        summary.readings = stats.readings
        summary.data_from, summary.data_to = _iso(observed.first_ts), _iso(observed.last_ts)
        with server_step("waiting for the worker", settings):
            _wait_for_commits(settings, worker, on_processed, stall_timeout_s)
        with server_step("counting the stored predictions", settings):
            stored = _wait_for_predictions(
                settings, worker, stats.readings, on_stored, stall_timeout_s
            )
        processing_seconds = time.monotonic() - replay_started
        summary.predictions_in_influxdb = stored
        summary.readings_per_second = round(stats.readings / processing_seconds, 1)
        expected = twin.result()
        with server_step("reading the alerts back", settings):
            alerts = read_alerts_settled(settings, alert_keys(expected), SETTLE_S)
            score_alerts(summary, alerts, observed.failures, horizon)
            summary.rejected = count_messages(settings, settings.topic(topics.DEAD_LETTER))
        write_alerts(alerts, alerts_file)
        twin_summary = DemoSummary(dataset=dataset.name)
        score_alerts(twin_summary, expected, observed.failures, horizon)
        summary.backtest_alerts_raised = twin_summary.alerts_raised
        summary.backtest_failures_detected = twin_summary.failures_detected
        summary.backtest_false_alarm_devices = twin_summary.false_alarm_devices
        streamed, backtest = alert_keys(alerts), alert_keys(expected)
        summary.alerts_equal_backtest = streamed == backtest
        summary.alerts_only_streamed = len(streamed - backtest)
        summary.alerts_only_backtest = len(backtest - streamed)
        summary.wall_seconds = round(time.monotonic() - started, 1)
    finally:
        # Everything is committed and counted by now: a worker that does not stop
        # cleanly in a few seconds loses nothing by being killed.
        stopping = time.monotonic()
        worker.stop(timeout_s=worker_stop_timeout_s)
        summary.stop_seconds = round(time.monotonic() - stopping, 1)
    return summary


def data_days(summary: DemoSummary) -> tuple[datetime, datetime] | None:
    """Midnight (UTC) of the first replayed day and of the day after the last one."""
    if summary.data_from is None or summary.data_to is None:
        return None
    first = datetime.fromisoformat(summary.data_from).replace(hour=0, minute=0, second=0)
    last = datetime.fromisoformat(summary.data_to).replace(hour=0, minute=0, second=0)
    return first, last + timedelta(days=1)


def flux_range(summary: DemoSummary) -> str:
    """A Flux query selecting the replayed data in the demo's bucket."""
    days = data_days(summary)
    span = (
        f"start: {days[0]:%Y-%m-%dT%H:%M:%SZ}, stop: {days[1]:%Y-%m-%dT%H:%M:%SZ}"
        if days
        else f"start: {EPOCH}"
    )
    return f"from(bucket: {flux_string(summary.influx_bucket)}) |> range({span})"


def grafana_time_range(summary: DemoSummary) -> str:
    """Grafana's URL parameters (epoch milliseconds) covering the replayed data's days."""
    days = data_days(summary)
    if days is None:
        return ""
    return f"from={int(days[0].timestamp() * 1000)}&to={int(days[1].timestamp() * 1000)}"
