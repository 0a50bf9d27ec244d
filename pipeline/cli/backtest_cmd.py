"""``forewarn backtest``: run a dataset through the engine in-process and report."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from pipeline.backtest import PRESETS, dataset_report, run_backtest, summary, write_report
from pipeline.backtest.page import page_data
from pipeline.backtest.plots import write_plot
from pipeline.backtest.presets import FOLLOW_HORIZON, RULE_COUNTERS, horizon_durations
from pipeline.backtest.report import write_alerts
from pipeline.cli import app
from pipeline.datasets import FORMATS, OPTION_KEYS, Dataset, Event, open_dataset
from pipeline.durations import parse_duration
from pipeline.engine import EngineConfig
from pipeline.errors import ConfigError
from pipeline.logging import configure_logging
from pipeline.settings import Settings
from schemas import Telemetry

_OPTION_HELP = "Keys: " + "; ".join(
    f"{fmt}: {', '.join(keys) or 'none'}" for fmt, keys in OPTION_KEYS.items()
)


def parse_budget(text: str) -> float | None:
    """``--alert-budget``: a number >= 0, or ``none``/``off`` for no budget."""
    if text.strip().lower() in ("none", "off", "no"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0.0):
        raise ConfigError(
            f"bad --alert-budget {text!r}: a number >= 0 (new alerts per 1,000 devices per "
            "--budget-period; 0 allows none) or none (no budget)"
        )
    return value


_REPORT_UNITS = (("days", 86_400.0), ("hours", 3_600.0), ("minutes", 60.0))


def _report_unit(dataset: Dataset, horizon: timedelta) -> Dataset:
    """A CSV without ``-o time_unit`` reports leads in the largest unit of the horizon."""
    seconds = horizon.total_seconds()
    for name, size in _REPORT_UNITS:
        if seconds >= size:
            return replace(dataset, time_unit=name, time_unit_seconds=size)
    return dataset


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _limited(events: Iterator[Event], limit: int | None) -> Iterator[Event]:
    """Stop after ``limit`` readings (failures dated up to the last one still pass)."""
    if limit is None:
        yield from events
        return
    seen = 0
    last_ts = None
    for event in events:
        if isinstance(event, Telemetry):
            if seen >= limit:
                return
            seen += 1
            last_ts = event.ts
        elif last_ts is not None and event.ts > last_ts and seen >= limit:
            return
        yield event


def deployed_partitions() -> int:
    """``FOREWARN_TOPIC_PARTITIONS`` as the deployment reads it (4 when unset)."""
    value = os.environ.get("FOREWARN_TOPIC_PARTITIONS", "").strip()
    if not value:
        return Settings.model_fields["topic_partitions"].default  # type: ignore[no-any-return]
    try:
        partitions = int(value)
    except ValueError:
        partitions = 0
    if partitions < 1:
        raise ConfigError(f"bad FOREWARN_TOPIC_PARTITIONS {value!r}: a whole number >= 1")
    return partitions


PLAIN_PROGRESS_EVERY = 100_000
"""Readings between two progress lines when stderr is not a terminal (CI logs, pipes)."""


def _progress(console: Console, progress: Progress, task: TaskID) -> Callable[[int], None]:
    """The backtest's progress: a live line on a terminal, a plain line per 100,000 readings
    elsewhere (a live display is invisible in a pipe or a log file)."""
    if console.is_terminal:
        return lambda n: progress.update(task, completed=n)
    started = time.monotonic()
    shown = [0]

    def line(n: int) -> None:
        if n - shown[0] >= PLAIN_PROGRESS_EVERY:
            shown[0] = n
            console.print(f"backtest: {n:,} readings ({time.monotonic() - started:.0f} s)")

    return line


_FLAG_OF = {
    name: "--" + name.replace("_", "-")
    for name in (
        "horizon",
        "seed",
        "fleet_model",
        "group_by",
        "alert_budget",
        "budget_period",
        "negative_rate",
        "counter_metrics",
        "level_only_metrics",
        "ignored_metrics",
    )
}


def _naming_the_flag(message: str) -> str:
    """``EngineConfig``'s message about a field, led by the flag that sets the field."""
    flag = _FLAG_OF.get(message.split(" ", 1)[0])
    return f"bad {flag}: {message}" if flag else message


@app.command("backtest")
def backtest(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help=f"One of: {', '.join(FORMATS)}.")],
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Dataset file or directory.")],
    *,
    horizon: Annotated[
        str | None,
        typer.Option(help="Failure horizon: 14d, 36h, or a number of dataset time units."),
    ] = None,
    report_dir: Annotated[
        Path | None, typer.Option(help="Where to write report.json and the PNG.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every deterministic choice.")] = 0,
    fleet_model: Annotated[
        str | None, typer.Option(help="Fleet pipeline name (see docs/engine.md).")
    ] = None,
    group_by: Annotated[
        str | None, typer.Option(help="Model group: device_type, fleet, or a tag name.")
    ] = None,
    alert_budget: Annotated[
        str | None,
        typer.Option(
            help="New alerts per 1,000 devices per --budget-period, whatever the cadence; "
            "0: no new alert; none: no budget (only the probability mark decides)."
        ),
    ] = None,
    budget_period: Annotated[
        str | None,
        typer.Option(help="Unit of time of the alert budget (default 1d): 1h, 1d, 1w ..."),
    ] = None,
    negative_rate: Annotated[
        float | None, typer.Option(help="Share of negative readings learnt.")
    ] = None,
    counter_metrics: Annotated[
        str | None, typer.Option(help="Comma-separated error counters (also the rule).")
    ] = None,
    level_only_metrics: Annotated[
        str | None, typer.Option(help="Comma-separated clocks/static metrics: level only.")
    ] = None,
    ignored_metrics: Annotated[
        str | None, typer.Option(help="Comma-separated metrics never used.")
    ] = None,
    rule_counters: Annotated[
        str | None,
        typer.Option(help="Counters of the rule baseline (default: counters, else the format's)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many readings (a slice).")
    ] = None,
    plot: Annotated[bool, typer.Option(help="Write the PNG.")] = True,
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Input partitions to simulate (default: FOREWARN_TOPIC_PARTITIONS, else 4), "
            "so the alerts equal a deployment's with that many telemetry partitions.",
        ),
    ] = None,
    device_column: Annotated[
        str | None, typer.Option(help="csv: device id column (a name or a 1-based position).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="csv: the device's name, for a file of one device.")
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="csv: timestamp column (a name or a 1-based position).")
    ] = None,
    failure_column: Annotated[
        str | None, typer.Option(help="csv: failure flag column (0/1, true/false, yes/no).")
    ] = None,
    failures: Annotated[
        str | None,
        typer.Option(
            help="csv: a CSV of failures: device,time[,kind] (or time[,kind] with --device)."
        ),
    ] = None,
    maintenance: Annotated[
        str | None,
        typer.Option(help="csv: a CSV of repairs/replacements: device,time[,kind]."),
    ] = None,
    metric_columns: Annotated[
        str | None, typer.Option(help="csv: comma-separated metric columns.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help=f"Reader option KEY=VALUE (repeatable). {_OPTION_HELP}"
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show info and debug log lines.")
    ] = False,
) -> None:
    """Run a dataset through the engine (model, rule baseline, anomaly-only) and report."""
    configure_logging("debug" if verbose else "warning", "console")
    reader_options: dict[str, object] = {}
    for key, value in (
        ("device_column", device_column),
        ("device", device),
        ("time_column", time_column),
        ("failure_column", failure_column),
        ("failures", failures),
        ("maintenance", maintenance),
        ("metric_columns", metric_columns),
    ):
        if value is not None:
            reader_options[key] = value
    for item in option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad --option {item!r}: expected KEY=VALUE")
        reader_options[key.strip().replace("-", "_")] = value
    dataset = open_dataset(fmt, path, **reader_options)

    settings: dict[str, Any] = dict(PRESETS.get(fmt, {}))
    settings["seed"] = seed
    if horizon is not None:
        settings["horizon"] = parse_duration(horizon, dataset.time_unit_seconds)
    if fmt == "csv" and "time_unit" not in reader_options:
        dataset = _report_unit(dataset, settings.get("horizon", EngineConfig.horizon))
    if fmt in FOLLOW_HORIZON:
        settings.update(horizon_durations(settings.get("horizon", EngineConfig.horizon)))
    if budget_period is not None:
        settings["budget_period"] = parse_duration(
            budget_period, dataset.time_unit_seconds, "--budget-period"
        )
    if dataset.time_unit == "cycles":
        # One budget period per cycle; clock-based units keep the default of one day.
        settings.setdefault("budget_period", timedelta(seconds=dataset.time_unit_seconds))
    overrides: tuple[tuple[str, object], ...] = (
        ("fleet_model", fleet_model),
        ("group_by", group_by),
        ("negative_rate", negative_rate),
        ("counter_metrics", _names(counter_metrics)),
        ("level_only_metrics", _names(level_only_metrics)),
        ("ignored_metrics", _names(ignored_metrics)),
    )
    for key, override in overrides:
        if override is not None:
            settings[key] = override
    if alert_budget is not None:
        settings["alert_budget"] = parse_budget(alert_budget)
    known = {item.name for item in fields(EngineConfig)}
    try:
        config = EngineConfig(**{k: v for k, v in settings.items() if k in known})
    except ConfigError as error:
        raise ConfigError(_naming_the_flag(str(error))) from None
    rule = _names(rule_counters) or config.counter_metrics or RULE_COUNTERS.get(fmt, ())

    out_dir = report_dir or Path("reports") / dataset.name
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--report-dir {out_dir} is a file, not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)  # a path that cannot be written fails now
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.completed:,} readings"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"backtest {dataset.name}", total=None)
        result = run_backtest(
            _limited(dataset.events(), limit),
            config,
            rule_counters=rule,
            ground_truth=dataset.ground_truth_failures,
            progress=_progress(console, progress, task),
            keep_series=lambda _device: plot,
            partitions=partitions if partitions is not None else deployed_partitions(),
        )
    report = dataset_report(result, dataset)
    report["page"] = page_data(result, dataset.time_unit_seconds)  # for `forewarn report`
    write_report(report, out_dir / "report.json")
    write_alerts(result.alerts, out_dir / "alerts.jsonl")
    typer.echo(summary(report))
    written = [out_dir / "report.json", out_dir / "alerts.jsonl"]
    if plot:
        write_plot(result, report, out_dir / "backtest.png", dataset.time_unit_seconds)
        written.append(out_dir / "backtest.png")
    typer.echo("wrote " + ", ".join(str(p) for p in written))
