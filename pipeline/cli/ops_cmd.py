"""Operations commands: ``forewarn doctor`` and ``forewarn topics``."""

from __future__ import annotations

import typer

from pipeline.cli import app
from pipeline.doctor import run_checks
from pipeline.settings import load_settings
from pipeline.topics import TOPICS, ensure_topics

topics_app = typer.Typer(help="Manage Forewarn's Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")


@app.command()
def doctor() -> None:
    """Check the configured deployment end to end; exit code 0 only when all checks pass."""
    settings = load_settings()
    typer.echo(f"kafka {settings.kafka_bootstrap} · influxdb {settings.influx_url}")
    failed = 0
    for result in run_checks(settings):
        mark = typer.style("ok  ", fg="green") if result.ok else typer.style("FAIL", fg="red")
        typer.echo(f"{mark} {result.name:<9} {result.detail}")
        failed += not result.ok
    if failed:
        typer.echo(f"{failed} check(s) failed: is `make up` running? see `make status`.")
        raise typer.Exit(1)
    typer.echo("all checks passed")


@topics_app.command("create")
def create_topics() -> None:
    """Create every Forewarn topic that does not exist yet (safe to run again)."""
    settings = load_settings()
    created = ensure_topics(settings)
    typer.echo(f"created {len(created)} topic(s){': ' + ', '.join(created) if created else ''}")


@topics_app.command("list")
def list_topics() -> None:
    """Show the topics Forewarn defines and how they are configured."""
    settings = load_settings()
    for spec in TOPICS:
        typer.echo(
            f"{settings.topic(spec.name):<32} partitions={spec.partition_count(settings):<3} "
            f"cleanup={spec.cleanup_policy:<7} max_bytes={spec.max_message_bytes:<8} {spec.purpose}"
        )
