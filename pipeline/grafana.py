"""Grafana's provisioned dashboards and alert rules as data: their Flux queries.

Used by ``bench/grafana_queries.py`` (timing every query against InfluxDB) and by the
tests that run every query and check the columns each panel reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

WINDOW_POINTS = 1_000
"""Grafana's ``v.windowPeriod`` is about the range divided by the panel's width in points."""


@dataclass(frozen=True)
class PanelQuery:
    """One Flux query of a dashboard panel or an alert rule."""

    dashboard: str
    title: str
    ref_id: str
    panel_type: str
    query: str

    @property
    def columns(self) -> frozenset[str]:
        """Columns the panel reads: a table's ``keep`` list, else ``_value`` (and ``_time``
        for time series)."""
        kept = re.findall(r"keep\(columns:\s*\[([^\]]*)\]\)", self.query)
        if kept:
            return frozenset(re.findall(r'"([^"]+)"', kept[-1]))
        if self.panel_type == "timeseries":
            return frozenset({"_time", "_value"})
        return frozenset({"_value"})


def panel_queries(grafana_dir: Path) -> list[PanelQuery]:
    """Every Flux query of every provisioned dashboard and alert rule under ``grafana_dir``."""
    queries: list[PanelQuery] = []
    for path in sorted((grafana_dir / "dashboards").rglob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                queries.append(
                    PanelQuery(
                        dashboard["title"],
                        panel.get("title", ""),
                        target.get("refId", "A"),
                        panel.get("type", ""),
                        target["query"],
                    )
                )
    for path in sorted((grafana_dir / "alerting").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        for group in document.get("groups", []):
            for rule in group.get("rules", []):
                for item in rule.get("data", []):
                    query = item.get("model", {}).get("query")
                    if query:
                        queries.append(
                            PanelQuery(
                                f"alert rules ({group['name']})",
                                rule["title"],
                                item["refId"],
                                "alert",
                                query,
                            )
                        )
    return queries


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels", [])))  # rows hold their panels
    return out


def window_period(start: datetime, stop: datetime) -> str:
    """``v.windowPeriod`` as Grafana would pick it for a ~1,000-point-wide panel."""
    seconds = max(1, int((stop - start).total_seconds() / WINDOW_POINTS))
    return f"{seconds}s"


def flux_for(
    query: PanelQuery, *, bucket: str, start: datetime, stop: datetime, device_id: str
) -> str:
    """The query as Grafana sends it: time range, window, bucket and variables filled in."""
    flux = query.query
    flux = flux.replace("v.timeRangeStart", start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    flux = flux.replace("v.timeRangeStop", stop.strftime("%Y-%m-%dT%H:%M:%SZ"))
    flux = flux.replace("v.windowPeriod", window_period(start, stop))
    flux = flux.replace("${device_id}", device_id)
    return flux.replace('bucket: "forewarn"', json.dumps(bucket).join(["bucket: ", ""]))
