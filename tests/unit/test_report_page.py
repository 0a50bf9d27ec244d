"""``forewarn report``: the page, rendered by a real headless Chromium (Debian package).

The report comes from a real backtest of the synthetic fleet the scorer tests use;
the page is loaded from disk by ``chromium --headless`` and the assertions read the DOM
Chromium serialises after rendering. A screenshot is left in the test's directory.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipeline.backtest import run_backtest
from pipeline.backtest.page import page_data
from pipeline.backtest.report import build_report
from pipeline.cli import _register_commands, app
from pipeline.errors import ForewarnError
from pipeline.report_page import render
from tests.unit.test_engine_scorer import CONFIG, fleet


class Dom(HTMLParser):
    """Counts of elements by tag, id and class, and the text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.ids: set[str] = set()
        self.classes: dict[str, int] = {}
        self.kinds: dict[str, int] = {}
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        for name in (values.get("class") or "").split():
            self.classes[name] = self.classes.get(name, 0) + 1
        if tag == "figure" and values.get("data-kind"):
            kind = str(values["data-kind"])
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
        for key in ("src", "href"):
            if (values.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(str(values[key]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    result = run_backtest(fleet(), CONFIG, rule_counters=("errors",), keep_series=lambda _: True)
    built = build_report(
        result, dataset="synthetic", fmt="csv", time_unit="days", time_unit_seconds=86_400
    )
    built["page"] = page_data(result, 86_400)
    # Keys other parts of the backtest add: rendered when present.
    built["warnings"] = [
        "only 10 failures: FDR moves 10 points per device",
        {"message": "seed 0 only"},
    ]
    built["rule_budgeted"] = {"fdr": 0.4, "far": 0.02, "median_lead": 3.0, "alerts": 12}
    read_back: dict[str, Any] = json.loads(json.dumps(built))  # as from report.json
    return read_back


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make browser`")
    return path


def test_the_page_renders_in_headless_chromium(report: dict[str, Any], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(report), encoding="utf-8")
    chromium = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dumped = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    dom = Dom()
    dom.feed(dumped)
    assert {"headline", "warnings", "curve", "timelines", "alerts"} <= dom.ids
    text = " ".join(dom.text)
    assert "Forewarn beside the baselines" in text
    for title in ("Rule baseline (any error counter rose)", "Anomaly score only"):
        assert title in text
    assert "Rule baseline under the same alert budget" in text  # rule_budgeted, when present
    assert "only 10 failures" in text
    assert "seed 0 only" in text
    assert dom.tags.get("svg", 0) >= 1 + sum(dom.kinds.values())  # the curve + each timeline
    assert dom.kinds.get("detected", 0) >= 1
    assert dom.kinds.get("false_alarm", 0) + dom.kinds.get("missed", 0) >= 1
    alerts = report["page"]["alerts"]
    assert alerts
    assert dom.classes.get("alert", 0) == len(alerts)
    assert dom.external == []  # self-contained
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, *flags, "--window-size=1280,2600", f"--screenshot={shot}", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_an_old_report_without_page_data_still_renders(report: dict[str, Any]) -> None:
    old = {k: v for k, v in report.items() if k not in ("page", "warnings", "rule_budgeted")}
    html = render(old)
    assert "No detection-vs-false-alarm curve" in html
    assert "No timeline kept" in html
    assert "Warnings</h2><p>None." in html
    with pytest.raises(ForewarnError, match="not a backtest report"):
        render({"dataset": "x"})


def test_forewarn_report_writes_the_page_and_names_a_bad_file(
    report: dict[str, Any], tmp_path: Path
) -> None:
    _register_commands()
    source = tmp_path / "report.json"
    source.write_text(json.dumps(report))
    result = CliRunner().invoke(app, ["report", str(source)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    source.write_text("{")
    result = CliRunner().invoke(app, ["report", str(source)])
    assert isinstance(result.exception, ForewarnError)
    assert "REPORT_JSON" in str(result.exception)


def test_device_rows_show_no_python_values() -> None:
    from pipeline.report_page import _devices_detail

    html = _devices_detail(
        {
            "devices_detail": [
                {"device_id": "p1", "failure_ts": None, "detected": False, "lead": None},
                {"device_id": "p2", "failure_ts": "2024-03-02", "detected": True, "lead": 1.5},
            ]
        }
    )
    cells = html.split("<tbody>")[1]
    for python_value in ("None", "False", "True"):
        assert python_value not in cells
    for shown in ("<td>no</td>", "<td>yes</td>", "<td>1.5</td>", "<td>—</td>"):
        assert shown in cells
