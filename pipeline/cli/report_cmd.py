"""``forewarn report``: a backtest's report.json as one self-contained HTML page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli import app
from pipeline.errors import ForewarnError


@app.command("report")
def report_page(
    report_json: Annotated[
        Path, typer.Argument(metavar="REPORT_JSON", help="A backtest's report.json.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the page (default: report.html beside it)."),
    ] = None,
) -> None:
    """Write one HTML page: headline vs baselines, curve, timelines, alerts, warnings."""
    from pipeline.report_page import render

    try:
        report = json.loads(report_json.read_text())
    except OSError as error:
        raise ForewarnError(f"REPORT_JSON: cannot read {report_json}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise ForewarnError(f"REPORT_JSON: {report_json} is not JSON ({error.msg})") from error
    target = out or report_json.with_name("report.html")
    target.write_text(render(report), encoding="utf-8")
    typer.echo(f"wrote {target}")
