"""The demo's pure parts: its namespace, error lines, time range, alert scoring, quiet logs."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from faust.types import TP
from influxdb_client.rest import ApiException
from kafka.errors import KafkaTimeoutError
from urllib3.exceptions import ReadTimeoutError

from pipeline.cli.stream_cmd import demo_report
from pipeline.demo import (
    DemoNamespace,
    DemoSummary,
    WorkerProcess,
    data_days,
    first_line,
    flux_range,
    grafana_time_range,
    run_demo,
    score_alerts,
    server_step,
)
from pipeline.engine import EngineConfig
from pipeline.errors import ConfigError, ForewarnError
from pipeline.logging import KnownFalseAlarms
from pipeline.settings import Settings
from schemas import Alert

BASE = Settings(state_dir=Path("/var/forewarn"))
NOW = datetime(2026, 11, 30, 23, 5, 7, tzinfo=UTC)


def test_a_run_gets_its_own_topics_bucket_worker_and_directory() -> None:
    space = DemoNamespace.fresh("forewarn-demo", now=NOW)
    settings = space.settings(BASE)
    assert space.run.startswith("20261130230507-")
    assert settings.topic("telemetry") == f"forewarn-demo.{space.run}.telemetry"
    assert settings.influx_bucket == "forewarn-demo"
    assert settings.worker_id == f"forewarn-demo.{space.run}"
    assert settings.state_dir == Path("/var/forewarn/demo/forewarn-demo") / space.run
    env = space.worker_env(BASE)
    assert env["FOREWARN_TOPIC_PREFIX"] == settings.topic_prefix
    assert env["FOREWARN_INFLUX_BUCKET"] == "forewarn-demo"
    assert Settings(topic_prefix=settings.topic_prefix).topic_prefix  # a valid prefix


def test_two_runs_in_the_same_second_do_not_share_topics() -> None:
    assert DemoNamespace.fresh(now=NOW).run != DemoNamespace.fresh(now=NOW).run


def test_a_namespace_owns_its_runs_topics_and_nothing_else() -> None:
    space = DemoNamespace.fresh("forewarn-demo", now=NOW)
    assert space.owns_topic("forewarn-demo.20250101000000-abcd.alerts")
    assert space.owns_topic("forewarn-demo.20250101000000-abcd-__assignor-__leader")
    assert not space.owns_topic("alerts")
    assert not space.owns_topic("forewarn-demo2.20250101000000-abcd.alerts")
    assert not space.owns_topic("forewarn-demo-x.20250101000000-abcd.alerts")


@pytest.mark.parametrize("name", ["", "Demo", "a.b", "a_b", "-x", "x" * 64, "forewarn demo"])
def test_a_bad_namespace_is_a_one_line_error_naming_the_flag(name: str) -> None:
    with pytest.raises(ConfigError, match="--namespace"):
        DemoNamespace.fresh(name)


def test_the_demo_refuses_a_namespace_that_is_the_deployments_bucket() -> None:
    with pytest.raises(ConfigError, match="FOREWARN_INFLUX_BUCKET"):
        DemoNamespace.fresh("forewarn").check_apart_from(BASE)


def test_the_demo_refuses_a_namespace_that_covers_the_deployments_topics() -> None:
    base = BASE.model_copy(update={"topic_prefix": "shop.prod."})
    with pytest.raises(ConfigError, match="FOREWARN_TOPIC_PREFIX"):
        DemoNamespace.fresh("shop").check_apart_from(base)
    DemoNamespace.fresh("forewarn-demo").check_apart_from(base)


def test_server_failures_become_one_line_naming_the_server_and_what_to_do() -> None:
    with pytest.raises(ForewarnError) as kafka, server_step("replaying", BASE):
        raise KafkaTimeoutError("no\nbrokers")
    assert str(kafka.value).startswith("replaying: Kafka at 127.0.0.1:9092 failed")
    assert "make up" in str(kafka.value)
    assert "\n" not in str(kafka.value)
    with pytest.raises(ForewarnError) as influx, server_step("counting", BASE):
        raise ReadTimeoutError(cast(Any, None), "/api/v2/query", "Read timed out.")
    assert "InfluxDB at http://127.0.0.1:8086 failed (ReadTimeoutError" in str(influx.value)
    assert "\n" not in str(influx.value)


def test_an_influxdb_refusal_is_named_by_its_http_status() -> None:
    with pytest.raises(ForewarnError) as refused, server_step("recreating", BASE):
        raise ApiException(status=401, reason="Unauthorized")
    assert "(ApiException: HTTP 401 Unauthorized)" in str(refused.value)


def test_first_line_does_not_repeat_the_error_type() -> None:
    assert first_line(KafkaTimeoutError("KafkaTimeoutError: none\nmore")) == (
        "KafkaTimeoutError: none"
    )
    assert first_line(ValueError()) == "ValueError"


def test_the_summary_names_the_replayed_days_for_flux_and_grafana() -> None:
    summary = DemoSummary(
        dataset="d",
        influx_bucket="forewarn-demo",
        data_from="2013-04-10T00:00:00Z",
        data_to="2013-05-19T00:00:00Z",
    )
    days = data_days(summary)
    assert days == (datetime(2013, 4, 10, tzinfo=UTC), datetime(2013, 5, 20, tzinfo=UTC))
    assert flux_range(summary) == (
        'from(bucket: "forewarn-demo") '
        "|> range(start: 2013-04-10T00:00:00Z, stop: 2013-05-20T00:00:00Z)"
    )
    assert grafana_time_range(summary) == "from=1365552000000&to=1369008000000"
    assert data_days(DemoSummary(dataset="d")) is None
    lines = demo_report(summary, Path("s.json"), Path("demo.log"), "http://grafana.example:3000")
    assert (
        "  Grafana           http://grafana.example:3000/d/forewarn-fleet-risk"
        "?from=1365552000000&to=1369008000000"
    ) in lines


def _alert(device: str, ts: datetime, alert_id: str, action: str = "raise") -> Alert:
    # only the fields scoring reads; the rest of the schema is tested in test_schemas
    fields: dict[str, Any] = {"alert_id": alert_id, "device_id": device, "ts": ts, "action": action}
    return Alert.model_construct(**fields)


def test_scoring_counts_a_detection_only_inside_the_horizon() -> None:
    failed_at = datetime(2013, 5, 1, tzinfo=UTC)
    alerts = [
        _alert("early", failed_at - timedelta(days=20), "a1"),
        _alert("caught", failed_at - timedelta(days=4), "a2"),
        _alert("caught", failed_at - timedelta(days=4), "a2"),  # read twice: one alert
        _alert("healthy", failed_at, "a3"),
    ]
    summary = DemoSummary(dataset="d")
    failures = {"early": failed_at, "caught": failed_at, "missed": failed_at}
    score_alerts(summary, alerts, failures, timedelta(days=14))
    assert (summary.alerts_raised, summary.devices_alerted) == (3, 3)
    assert (summary.failures, summary.failures_detected) == (3, 1)
    assert summary.lead_days == [4.0]
    assert summary.false_alarm_devices == 1


def test_with_a_log_file_no_log_line_or_warning_reaches_the_console(tmp_path: Path) -> None:
    log_file = tmp_path / "demo.log"
    program = (
        "import logging, warnings, structlog\n"
        "from pathlib import Path\n"
        "from pipeline.logging import configure_logging\n"
        f"configure_logging('info', 'console', log_file=Path({str(log_file)!r}))\n"
        "logging.getLogger('kafka.net.selector').warning('blocking the event loop')\n"
        "logging.getLogger('aiokafka').error('Metadata refresh failed: Cancelled')\n"
        "warnings.warn('a library is deprecated', UserWarning)\n"
        "structlog.get_logger('pipeline').info('ours')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert (result.stdout, result.stderr) == ("", "")
    written = log_file.read_text()
    for text in ("blocking the event loop", "Metadata refresh failed", "deprecated", "ours"):
        assert text in written


def test_a_second_demo_in_the_same_namespace_is_refused_while_the_first_runs(
    tmp_path: Path,
) -> None:
    base = Settings(state_dir=tmp_path)
    first = DemoNamespace.fresh("forewarn-demo", now=NOW)
    with first.exclusive(base):
        second = DemoNamespace.fresh("forewarn-demo", now=NOW)
        refused = pytest.raises(ConfigError, match=r"another forewarn demo is running .*namespace")
        with refused, second.exclusive(base):
            pass
        with DemoNamespace.fresh("other-demo", now=NOW).exclusive(base):
            pass  # another namespace is apart
    with DemoNamespace.fresh("forewarn-demo", now=NOW).exclusive(base):
        pass  # free again once the first run ended


def test_the_demo_refuses_development_secrets_before_it_replays(tmp_path: Path) -> None:
    base = Settings(state_dir=tmp_path, local_development=False)
    with pytest.raises(ConfigError, match="FOREWARN_LOCAL_DEVELOPMENT=1"):
        run_demo(
            base,
            cast(Any, None),  # never read: the check comes first
            namespace=DemoNamespace.fresh(now=NOW),
            horizon=timedelta(days=14),
            on_replay=lambda _: None,
            on_processed=lambda *_: None,
            on_stored=lambda *_: None,
            config=EngineConfig(),
            alerts_file=tmp_path / "alerts.jsonl",
        )
    assert list(tmp_path.iterdir()) == []  # no run directory, no worker


def test_a_worker_that_stops_shows_its_own_one_line_reason(tmp_path: Path) -> None:
    env = {"FOREWARN_LOCAL_DEVELOPMENT": "0", "FOREWARN_STATE_DIR": str(tmp_path)}
    worker = WorkerProcess(env, tmp_path / "worker.log")
    worker.process.wait(timeout=60)
    with pytest.raises(ForewarnError) as error:
        worker.check_alive()
    worker.stop()
    message = str(error.value)
    assert "FOREWARN_MODEL_SIGNING_KEY" in message
    assert "worker.log" in message
    assert "\n" not in message


def _record(logger: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, msg, args, None)


def test_known_false_alarms_of_faust_and_mode_are_dropped_and_nothing_else() -> None:
    alarms = KnownFalseAlarms()
    stalled = "[^--AIOKafkaConsumerThread]: Stream has not started processing %r (started %s)."
    changelog = TP("forewarn-demo.x.forewarn-device-state-changelog", 2)
    assert not alarms.filter(_record("faust", logging.ERROR, stalled, changelog, "7 minutes ago"))
    telemetry = TP("forewarn-demo.x.telemetry", 2)
    assert alarms.filter(_record("faust", logging.ERROR, stalled, telemetry, "7 minutes ago"))
    overlap = "Timer %s is overlapping (interval=%r runtime=%r)"
    ours = "pipeline.streaming.app.create_app.<locals>.periodic_checkpoint"
    assert not alarms.filter(_record("mode.timers", logging.WARNING, overlap, ours, 0.5, 0.9))
    faust_own = "faust.transport.consumer.Consumer._livelock"
    assert alarms.filter(_record("mode.timers", logging.WARNING, overlap, faust_own, 0.5, 0.9))
    assert alarms.filter(_record("pipeline", logging.INFO, "checkpoint"))
