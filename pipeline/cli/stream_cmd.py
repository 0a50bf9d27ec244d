"""Streaming commands: ``forewarn worker``, ``forewarn replay`` and ``forewarn alerts``."""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import structlog
import typer
from kafka import KafkaConsumer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline import topics
from pipeline.cli import app
from pipeline.cli.engine_options import engine_config_for
from pipeline.datasets import FORMATS, open_dataset
from pipeline.demo import (
    DEFAULT_NAMESPACE,
    DemoSummary,
    data_days,
    first_line,
    flux_range,
    grafana_time_range,
)
from pipeline.errors import ConfigError, DatasetError, ForewarnError
from pipeline.logging import configure_logging
from pipeline.producer import DEFAULT_MAX_READINGS
from pipeline.replay import (
    BATCH_BY_DEFAULT,
    Pace,
    ReplayStats,
    check_batch_readings,
    replay,
)
from pipeline.security import kafka_options
from pipeline.settings import Settings, load_settings
from schemas import Alert
from schemas.telemetry import MAX_BATCH_READINGS

log = structlog.get_logger(__name__)


@app.command()
def worker(
    preset: Annotated[
        str | None,
        typer.Option(
            help="Engine preset (backblaze, cmapss, csv); default FOREWARN_ENGINE_PRESET."
        ),
    ] = None,
) -> None:
    """Run a Forewarn worker: validate, score, alert, learn (until Ctrl-C or SIGTERM)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    from pipeline.streaming.run import run_worker

    config = engine_config_for(preset or settings.engine_preset, settings.engine_overrides)
    run_worker(settings, config)


@app.command("replay")
def replay_cmd(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=f"One of: {', '.join(FORMATS)}.")],
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Dataset file or directory.")],
    *,
    rate: Annotated[
        float | None, typer.Option(help="Messages per second (default: as fast as possible).")
    ] = None,
    speedup: Annotated[
        float | None, typer.Option(help="Replay the data's own clock this many times faster.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Stop after this many readings and failures.")
    ] = None,
    single: Annotated[
        bool,
        typer.Option(
            "--single/--batch",
            help="One reading per message, or TelemetryBatch messages by partition.",
        ),
    ] = not BATCH_BY_DEFAULT,
    batch_readings: Annotated[
        int | None,
        typer.Option(
            help=f"Readings per batch (1-{MAX_BATCH_READINGS}; default {DEFAULT_MAX_READINGS})."
        ),
    ] = None,
) -> None:
    """Produce a dataset's readings and failures to Kafka, in time order.

    With --batch, readings go in batches, one per partition at a time (TelemetryBatch),
    and each failure after its partition's pending readings; with --single, one reading
    per message.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if single and batch_readings is not None:
        raise ConfigError("give either --single or --batch-readings, not both")
    readings = DEFAULT_MAX_READINGS if batch_readings is None else batch_readings
    check_batch_readings(readings)
    dataset = open_dataset(fmt, path)
    pace = Pace(rate=rate, speedup=speedup)
    with Progress(
        TextColumn("replaying {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} messages"),
        TimeElapsedColumn(),
        transient=True,
        console=None,
    ) as progress:
        task = progress.add_task(dataset.name, total=limit)

        def show(stats: ReplayStats) -> None:
            progress.update(task, completed=stats.messages)

        stats = replay(
            settings,
            dataset.events(),
            pace=pace,
            limit=limit,
            on_progress=show,
            batch=not single,
            batch_readings=readings,
        )
    rate_done = stats.messages / stats.seconds if stats.seconds else 0.0
    typer.echo(
        f"replayed {stats.readings:,} readings (in {stats.batches:,} messages) and "
        f"{stats.failures:,} failures from {dataset.name} in {stats.seconds:.1f} s "
        f"({rate_done:,.0f} readings and failures/s) to {settings.kafka_bootstrap}"
    )
    typer.echo("next: `forewarn alerts --from-beginning` shows what the workers raised")


def format_alert(alert: Alert) -> str:
    """One readable line per alert: who, how risky against what threshold, and why.

    Raised alerts list their explanations (plain metric names, raw values, recent
    change, peers); cleared alerts say why they cleared. Alerts of schema version 1
    have no explanations and fall back to their factors' feature names.
    """
    stamp = f"{alert.ts:%Y-%m-%d %H:%M}"
    who = f"{alert.device_id} ({alert.device_type})"
    if alert.action == "clear":
        return f"{stamp} clear {'':<8} {who} · {alert.reason} [{alert.alert_id}]"
    against = f" (threshold {alert.threshold:.3g})" if alert.threshold is not None else ""
    why = "; ".join(e.text for e in alert.explanations[:4]) or (
        ", ".join(f.label or f.feature for f in alert.top_factors[:3]) or alert.reason
    )
    return (
        f"{stamp} RAISE {alert.severity:<8} {who} risk {alert.risk:.3g}{against} · {why} "
        f"[{alert.alert_id}]"
    )


@app.command()
def alerts(
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Show alerts already on the topic.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Keep waiting for new alerts.")
    ] = True,
) -> None:
    """Follow the alerts topic, one readable line per alert (Ctrl-C to stop)."""
    settings = load_settings()
    name = settings.topic(topics.ALERTS)
    admin = topics.admin_client(settings)
    try:
        exists = name in admin.list_topics()
    finally:
        admin.close()
    if not exists:
        raise ConfigError(
            f"topic {name!r} does not exist on {settings.kafka_bootstrap}: check "
            "FOREWARN_TOPIC_PREFIX (`forewarn topics create` makes a deployment's topics)"
        )
    consumer = KafkaConsumer(
        name,
        bootstrap_servers=settings.kafka_bootstrap,
        **kafka_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level="read_committed",
        consumer_timeout_ms=float("inf") if follow else 3000,
    )
    shown = 0
    try:
        for record in consumer:
            try:
                alert = Alert.model_validate_json(record.value)
            except ValidationError:
                typer.echo(f"(unreadable alert at offset {record.offset})", err=True)
                continue
            typer.echo(format_alert(alert))
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    typer.echo(f"{shown} alert(s) shown at {datetime.now(UTC):%H:%M:%S} UTC", err=True)
    sys.stdout.flush()


def _forewarn() -> str:
    """How to call this command again: ``forewarn`` if it is on PATH, else its venv path."""
    if shutil.which("forewarn"):
        return "forewarn"
    here = Path(sys.executable).parent / "forewarn"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


DEFAULT_DEMO_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "backblaze"


@app.command()
def demo(
    path: Annotated[
        Path, typer.Option(help="Backblaze daily CSV (.csv/.csv.gz) or a directory of them.")
    ] = DEFAULT_DEMO_DATA / "backblaze-2013-04-10_2013-05-19.csv.gz",
    summary_file: Annotated[Path, typer.Option(help="Where to write the summary as JSON.")] = Path(
        "demo-summary.json"
    ),
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Replay only the first N messages (a quick look)."),
    ] = None,
    namespace: Annotated[
        str,
        typer.Option(
            help="The demo's own topics (<namespace>.<run>.*) and bucket (<namespace>); "
            "each run replaces the namespace's previous run."
        ),
    ] = DEFAULT_NAMESPACE,
) -> None:
    """The main job: stream the Backblaze sample through a worker and summarise what it found.

    Runs in a namespace of its own; the configured deployment is never touched.
    """
    import json

    from pipeline.demo import DemoNamespace, run_demo

    settings = load_settings()
    space = DemoNamespace.fresh(namespace)
    space.check_apart_from(settings)
    run_dir = space.run_dir(settings)
    demo_log = run_dir / "demo.log"
    configure_logging(settings.log_level, "json", log_file=demo_log)
    if not path.exists():
        raise DatasetError(
            f"no Backblaze data at {path}: the demo reads the shared data folder beside "
            "the checkout (../shared/data), or give --path"
        )
    dataset = open_dataset("backblaze", path)
    config = engine_config_for(settings.engine_preset, settings.engine_overrides)
    horizon = config.horizon
    typer.echo(
        f"Forewarn demo: {dataset.name} through Kafka {settings.kafka_bootstrap}, "
        f"InfluxDB {settings.influx_url}, namespace {space.name!r}"
    )
    try:
        with Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            TextColumn("{task.completed:>9,.0f}"),
            TimeElapsedColumn(),
        ) as progress:
            sent = progress.add_task("events replayed", total=limit)
            processed = progress.add_task("Kafka messages processed", total=None)
            stored = progress.add_task("predictions in InfluxDB", total=None)

            replayed = 0

            def on_replay(stats: ReplayStats) -> None:
                nonlocal replayed
                replayed = stats.messages
                progress.update(sent, completed=replayed)

            def on_processed(done: int, total: int) -> None:
                # The replay is over; its messages batch many readings each.
                progress.update(sent, total=replayed, completed=replayed)
                progress.update(processed, total=total, completed=done)

            def on_stored(count: int, expected: int) -> None:
                progress.update(stored, total=expected, completed=count)

            summary = run_demo(
                settings,
                dataset,
                namespace=space,
                horizon=horizon,
                config=config,
                alerts_file=summary_file.parent / "demo-alerts.jsonl",
                limit=limit,
                on_replay=on_replay,
                on_processed=on_processed,
                on_stored=on_stored,
            )
    except ForewarnError as error:
        log.error("demo_failed", error=str(error))
        raise
    except Exception as error:  # a bug: its traceback goes to the log, one line to the person
        log.exception("demo_failed")
        raise ForewarnError(
            f"the demo failed unexpectedly ({first_line(error)}); the traceback is in {demo_log}"
        ) from error
    summary_file.write_text(json.dumps(summary.as_json(), indent=2) + "\n")
    report = demo_report(summary, summary_file, demo_log, settings.grafana_url.rstrip("/"))
    typer.echo("\n".join(report))


def _same(summary: DemoSummary) -> str:
    if summary.alerts_equal_backtest is None:
        return "not compared"
    if summary.alerts_equal_backtest:
        return "yes: the same alerts, id for id"
    return (
        f"NO: {summary.alerts_only_streamed} alerts only from the worker, "
        f"{summary.alerts_only_backtest} only in the backtest (see docs/streaming.md)"
    )


def demo_report(
    summary: DemoSummary,
    summary_file: Path,
    demo_log: Path,
    grafana_url: str = Settings.model_fields["grafana_url"].default,
) -> list[str]:
    """The lines a person reads at the end of ``forewarn demo``."""
    lead = f"{summary.median_lead_days:.1f} days" if summary.median_lead_days is not None else "-"
    days = data_days(summary)
    last_day = days[1] - timedelta(days=1) if days else None
    span = f"{days[0]:%Y-%m-%d} to {last_day:%Y-%m-%d} UTC" if days and last_day else "-"
    return [
        "",
        f"readings streamed        {summary.readings:,}",
        f"predictions in InfluxDB  {summary.predictions_in_influxdb:,} (Flux count)",
        f"alerts raised            {summary.alerts_raised:,} on {summary.devices_alerted:,} drives",
        f"failed drives            {summary.failures}",
        f"  detected in advance    {summary.failures_detected} "
        f"({summary.failures_detected / max(summary.failures, 1):.0%}), median lead {lead}",
        f"  drives alerted that did not fail: {summary.false_alarm_devices}",
        f"rejected messages        {summary.rejected}",
        f"throughput               {summary.readings_per_second:,.0f} readings/s "
        f"end to end; {summary.wall_seconds:.0f} s in all",
        f"backtest, same input     {summary.backtest_alerts_raised:,} alerts raised, "
        f"{summary.backtest_failures_detected} failed drives detected, "
        f"{summary.backtest_false_alarm_devices} alerted that did not fail "
        f"({summary.partitions} partitions)",
        f"  worker == backtest     {_same(summary)}",
        "",
        f"summary written to {summary_file}; every alert message (raises and clears) in "
        f"{summary_file.parent / 'demo-alerts.jsonl'}",
        f"where the data is:  topics {summary.topic_prefix}*, InfluxDB bucket "
        f"{summary.influx_bucket!r}",
        f"  time range        {span} (the readings' own dates, not today)",
        f"  Flux              {flux_range(summary)}",
        f"  Grafana           {grafana_url}/d/forewarn-fleet-risk?{grafana_time_range(summary)}",
        "                    (Grafana runs with `docker compose up`; `make up` starts none. "
        'Its dashboards read bucket "forewarn";',
        f'                    this run is in bucket "{summary.influx_bucket}": use Explore '
        "with the Flux range above)",
        f"every alert:        FOREWARN_TOPIC_PREFIX={summary.topic_prefix} "
        f"{_forewarn()} alerts --from-beginning --no-follow",
        f"logs:               worker {summary.worker_log}",
        f"                    demo   {demo_log}",
        "the next `make demo` replaces this run (same namespace, new topics, bucket emptied)",
    ]
