"""Streaming commands: ``forewarn worker``, ``forewarn replay`` and ``forewarn alerts``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from kafka import KafkaConsumer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline import topics
from pipeline.cli import app
from pipeline.cli.engine_options import engine_config_for
from pipeline.datasets import FORMATS, open_dataset
from pipeline.logging import configure_logging
from pipeline.replay import Pace, ReplayStats, replay
from pipeline.security import kafka_options
from pipeline.settings import load_settings
from schemas import Alert


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
    path: Annotated[Path, typer.Argument(help="Dataset file or directory.")],
    rate: Annotated[
        float | None, typer.Option(help="Messages per second (default: as fast as possible).")
    ] = None,
    speedup: Annotated[
        float | None, typer.Option(help="Replay the data's own clock this many times faster.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
) -> None:
    """Produce a dataset's readings and failures to Kafka, in time order."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
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

        stats = replay(settings, dataset.events(), pace=pace, limit=limit, on_progress=show)
    rate_done = stats.messages / stats.seconds if stats.seconds else 0.0
    typer.echo(
        f"replayed {stats.readings:,} readings and {stats.failures:,} failures from "
        f"{dataset.name} in {stats.seconds:.1f} s ({rate_done:,.0f} msg/s) "
        f"to {settings.kafka_bootstrap}"
    )
    typer.echo("next: `forewarn alerts --from-beginning` shows what the workers raised")


def format_alert(alert: Alert) -> str:
    """One readable line per alert."""
    why = (
        ", ".join(f"{factor.feature}={factor.value:g}" for factor in alert.top_factors[:3])
        or alert.reason
    )
    action = "RAISE" if alert.action == "raise" else "clear"
    return (
        f"{alert.ts:%Y-%m-%d %H:%M} {action} {alert.severity:<8} {alert.device_id} "
        f"({alert.device_type}) risk {alert.risk:.2f} · {why} · {alert.reason} "
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
    consumer = KafkaConsumer(
        settings.topic(topics.ALERTS),
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


DEFAULT_DEMO_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "backblaze"


@app.command()
def demo(
    path: Annotated[
        Path, typer.Option(help="Backblaze daily CSV (.csv/.csv.gz) or a directory of them.")
    ] = DEFAULT_DEMO_DATA / "backblaze-2013-04-10_2013-05-19.csv.gz",
    summary_file: Annotated[Path, typer.Option(help="Where to write the summary as JSON.")] = Path(
        "demo-summary.json"
    ),
) -> None:
    """The main job: stream the Backblaze sample through a worker and summarise what it found.

    Resets the local deployment's topics and stored predictions first.
    """
    import json

    from pipeline.demo import run_demo

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    dataset = open_dataset("backblaze", path)
    horizon = engine_config_for("backblaze", settings.engine_overrides).horizon
    typer.echo(
        f"Forewarn demo: {dataset.name} through Kafka {settings.kafka_bootstrap}, "
        f"InfluxDB {settings.influx_url}"
    )
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.completed:>9,.0f}"),
        TimeElapsedColumn(),
    ) as progress:
        sent = progress.add_task("replaying into Kafka", total=None)
        stored = progress.add_task("predictions in InfluxDB", total=None)

        def on_replay(stats: ReplayStats) -> None:
            progress.update(sent, completed=stats.readings)

        def on_stored(count: int, expected: int) -> None:
            progress.update(sent, total=expected, completed=expected)
            progress.update(stored, total=expected, completed=count)

        summary = run_demo(
            settings, dataset, horizon=horizon, on_replay=on_replay, on_stored=on_stored
        )
    summary_file.write_text(json.dumps(summary.as_json(), indent=2) + "\n")
    lead = f"{summary.median_lead_days:.1f} days" if summary.median_lead_days is not None else "-"
    typer.echo(
        "\n".join(
            [
                "",
                f"readings streamed        {summary.readings:,}",
                f"predictions in InfluxDB  {summary.predictions_in_influxdb:,} (Flux count)",
                f"alerts raised            {summary.alerts_raised:,} on "
                f"{summary.devices_alerted:,} drives",
                f"failed drives            {summary.failures}",
                f"  detected in advance    {summary.failures_detected} "
                f"({summary.failures_detected / max(summary.failures, 1):.0%}), "
                f"median lead {lead}",
                f"  drives alerted that did not fail: {summary.false_alarm_devices}",
                f"rejected messages        {summary.rejected}",
                f"throughput               {summary.readings_per_second:,.0f} readings/s "
                f"end to end; {summary.wall_seconds:.0f} s in all",
                "",
                f"summary written to {summary_file}",
                "look further:  forewarn alerts --from-beginning --no-follow   (every alert, "
                "with its reasons)",
                f"               worker log: {summary.worker_log}",
                "               Grafana dashboards: docker compose up grafana (docs/deployment.md)",
            ]
        )
    )
