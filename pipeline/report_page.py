"""``forewarn report``: a backtest's ``report.json`` as one self-contained HTML page.

Headline figures beside the rule and anomaly-only baselines (and any other baseline
the report holds), the detection-vs-false-alarm curve, risk timelines of detected,
missed and falsely alerted devices, the alerts with their explanations, and the
report's warnings. Charts are matplotlib SVG inlined into the page; there is no script
and no external resource, so the file can be mailed or archived as is. Sections whose
data the report lacks (older reports, ``--no-plot`` runs) say so instead of failing.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from pipeline.errors import ForewarnError

VARIANTS = (
    ("model", "Forewarn (model + alert budget)"),
    ("baseline", "Rule baseline (any error counter rose)"),
    ("rule_budgeted", "Rule baseline under the same alert budget"),
    ("anomaly_only", "Anomaly score only"),
)
KIND_TITLES = {
    "detected": "Detected: failed and alerted before failing",
    "missed": "Missed: failed without an alert",
    "false_alarm": "False alarms: alerted, never failed",
}
_FLOOR = 1e-6

CSS = """
body{
  font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
  margin:0;
  color:#1d2330;
  background:#f6f7f9;
}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:32px 0 10px}
.sub{color:#5b6474;margin:0 0 18px}
section{
  background:#fff;
  border:1px solid #e1e4ea;
  border-radius:8px;
  padding:16px 20px;
  margin:16px 0;
}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{font-weight:600;color:#444c5a;background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.primary td{font-weight:600;background:#f1f6ff}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{
  flex:1 1 160px;
  border:1px solid #e1e4ea;
  border-radius:8px;
  padding:10px 14px;
  background:#fff;
}
.card b{display:block;font-size:24px}
.card span{color:#5b6474;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.critical{color:#b3261e;font-weight:600}
.warning{color:#8a5a00}
.warn li{margin:4px 0}
.missing{color:#5b6474;font-style:italic}
svg{max-width:100%;height:auto}
"""


def _pct(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return "n/a"
    return f"{100 * value:.1f} %"


def _num(value: Any, digits: int = 1) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _page(report: Mapping[str, Any]) -> Mapping[str, Any]:
    page = report.get("page")
    return page if isinstance(page, Mapping) else {}


def _variants(report: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    found = [
        (key, title, report[key]) for key, title in VARIANTS if isinstance(report.get(key), Mapping)
    ]
    extra = report.get("baselines")
    if isinstance(extra, Mapping):
        found += [
            (str(name), str(name).replace("_", " "), figures)
            for name, figures in sorted(extra.items())
            if isinstance(figures, Mapping) and all(name != key for key, _, _ in found)
        ]
    return found


def _headline(report: Mapping[str, Any]) -> str:
    unit = escape(str(report.get("time_unit", "")))
    rows = []
    for key, title, figures in _variants(report):
        rows.append(
            f'<tr class="{"primary" if key == "model" else ""}" data-variant="{escape(key)}">'
            f"<td>{escape(title)}</td>"
            f'<td class="num">{_pct(figures.get("fdr"))}</td>'
            f'<td class="num">{_pct(figures.get("far"))}</td>'
            f'<td class="num">{_num(figures.get("median_lead"))} {unit}</td>'
            f'<td class="num">{_num(figures.get("alerts"), 0)}</td></tr>'
        )
    model: Mapping[str, Any] = report["model"]
    cards = [
        ("Readings", _num(report.get("readings"), 0)),
        ("Devices", _num(report.get("devices"), 0)),
        ("Failures", _num(report.get("failures"), 0)),
        ("Detection rate (FDR)", _pct(model.get("fdr"))),
        ("False alarm rate (FAR)", _pct(model.get("far"))),
        ("ROC AUC over readings", _num(model.get("roc_auc"), 3)),
    ]
    card_html = "".join(
        f'<div class="card"><b>{v}</b><span>{escape(k)}</span></div>' for k, v in cards
    )
    return (
        f'<section id="headline"><div class="cards">{card_html}</div>'
        "<h2>Forewarn beside the baselines</h2>"
        "<table><thead><tr><th>variant</th><th>FDR (failed devices alerted in time)</th>"
        "<th>FAR (healthy devices alerted)</th><th>median lead</th><th>alerts</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _curve(report: Mapping[str, Any]) -> str:
    page = _page(report)
    curve = page.get("curve") or []
    if not curve:
        return (
            '<section id="curve"><h2>Detection vs false alarms</h2>'
            '<p class="missing">No detection-vs-false-alarm curve: no model scored any '
            "reading in this run (or report.json predates curves)."
            "</p></section>"
        )
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.plot(
        [max(p["far"], 1e-4) for p in curve],
        [p["fdr"] for p in curve],
        color="#2f6fdb",
        label="model, any fixed threshold (post-run sweep)",
    )
    for _key, title, figures in _variants(report):
        if isinstance(figures.get("far"), (int, float)) and isinstance(
            figures.get("fdr"), (int, float)
        ):
            ax.plot(max(figures["far"], 1e-4), figures["fdr"], "o", ms=8, label=f"{title} (online)")
    ax.set_xscale("log")
    ax.set_xlabel("false alarm rate (share of healthy devices alerted)")
    ax.set_ylabel("detection rate (share of failures alerted in time)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return (
        '<section id="curve"><h2>Detection vs false alarms</h2>'
        '<p class="sub">The line is every threshold chosen after the run (no budget): an upper '
        "bound, not what an operator would have seen; the dots are the online alerts.</p>"
        f"{_svg(fig)}</section>"
    )


def _timeline_svg(item: Mapping[str, Any], unit: str) -> str:
    fig, ax = plt.subplots(figsize=(5, 2.4))
    ts = item.get("t") or []
    ax.plot(
        ts, [max(r, _FLOOR) for r in item.get("risk") or []], color="#c2410c", lw=1.4, label="risk"
    )
    ax.plot(
        ts,
        [max(a, _FLOOR) for a in item.get("anomaly") or []],
        color="#6b7280",
        lw=1,
        label="anomaly",
    )
    ax.set_yscale("log")
    ax.set_ylim(_FLOOR / 2, 1.0)
    ax.set_xlabel(f"{unit} since first reading")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return _svg(fig)


def _timelines(report: Mapping[str, Any]) -> str:
    page = _page(report)
    timelines = page.get("timelines") or {}
    unit = str(report.get("time_unit", ""))
    counts = page.get("devices_by_kind") or {}
    parts = ['<section id="timelines"><h2>Risk over time</h2>']
    for kind, title in KIND_TITLES.items():
        items: Sequence[Mapping[str, Any]] = timelines.get(kind) or []
        total = counts.get(kind)
        count = f" ({total:,} devices)" if isinstance(total, int) else ""
        parts.append(f'<h3 data-kind="{kind}">{escape(title)}{count}</h3>')
        if not items:
            parts.append('<p class="missing">No timeline kept for this kind.</p>')
            continue
        parts.append('<div class="grid">')
        for item in items:
            parts.append(
                f'<figure class="timeline" data-kind="{kind}">'
                f"<figcaption>{escape(str(item.get('device_id')))}</figcaption>"
                f"{_timeline_svg(item, unit)}</figure>"
            )
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def _alerts(report: Mapping[str, Any]) -> str:
    page = _page(report)
    alerts = page.get("alerts")
    if not alerts:
        return (
            '<section id="alerts"><h2>Alerts</h2><p class="missing">No alerts in this report.'
            "</p></section>"
        )
    rows = []
    for alert in alerts:
        severity = escape(str(alert.get("severity", "")))
        outcome = "failed" if alert.get("failed") else "did not fail"
        why = "; ".join(str(e) for e in alert.get("explanations") or []) or str(
            alert.get("reason", "")
        )
        rows.append(
            f'<tr class="alert"><td>{escape(str(alert.get("ts", ""))[:16])}</td>'
            f'<td class="{severity}">{severity}</td>'
            f"<td>{escape(str(alert.get('device_id')))}<br>"
            f"<small>{escape(str(alert.get('device_type', '')))}</small></td>"
            f'<td class="num">{_num(alert.get("risk"), 3)}</td><td>{escape(outcome)}</td>'
            f"<td>{escape(why)}</td></tr>"
        )
    total = page.get("alerts_total", len(alerts))
    return (
        f'<section id="alerts"><h2>Alerts ({len(alerts):,} of {total:,} shown)</h2>'
        "<table><thead><tr><th>time</th><th>severity</th><th>device</th><th>risk</th>"
        f"<th>outcome</th><th>why</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _warnings(report: Mapping[str, Any]) -> str:
    warnings = report.get("warnings") or []
    if not warnings:
        return '<section id="warnings"><h2>Warnings</h2><p>None.</p></section>'
    items = []
    for warning in warnings:
        text = warning.get("message", warning) if isinstance(warning, Mapping) else warning
        items.append(f"<li>{escape(str(text))}</li>")
    return (
        f'<section id="warnings" class="warn"><h2>Warnings</h2><ul>{"".join(items)}</ul></section>'
    )


def _plain(value: object) -> str:
    """A JSON value as a person reads it: no ``None``/``True``/``False`` from Python."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _devices_detail(report: Mapping[str, Any]) -> str:
    detail = report.get("devices_detail")
    if not isinstance(detail, Sequence) or isinstance(detail, str) or not detail:
        return ""
    rows = [item for item in detail if isinstance(item, Mapping)][:100]
    if not rows:
        return ""
    columns = list(rows[0])[:8]
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_plain(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return (
        '<section id="devices-detail"><h2>Failures and alerted devices '
        f"({len(rows)} of {len(detail)} rows shown: one per failure, one per healthy device "
        "that was alerted)</h2>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def render(report: Mapping[str, Any]) -> str:
    """The HTML page of ``report`` (a parsed ``report.json``).

    Raises :class:`ForewarnError` when ``report`` is not a backtest report.
    """
    if not isinstance(report, Mapping) or not isinstance(report.get("model"), Mapping):
        raise ForewarnError("not a backtest report.json: it has no 'model' figures")
    dataset = escape(str(report.get("dataset", "backtest")))
    horizon = (
        report.get("config", {}).get("horizon")
        if isinstance(report.get("config"), Mapping)
        else None
    )
    unit_s = report.get("time_unit_seconds") or 1
    horizon_text = (
        f" · horizon {horizon / unit_s:g} {escape(str(report.get('time_unit', '')))}"
        if isinstance(horizon, (int, float))
        else ""
    )
    body = "".join(
        [
            f"<h1>Forewarn backtest: {dataset}</h1>",
            f'<p class="sub">{_num(report.get("readings"), 0)} readings of '
            f"{_num(report.get('devices'), 0)} devices{horizon_text} · seed "
            f"{escape(str(report.get('seed', 'n/a')))}</p>",
            _headline(report),
            _warnings(report),
            _curve(report),
            _timelines(report),
            _alerts(report),
            _devices_detail(report),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Forewarn backtest: {dataset}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main>{body}</main></body></html>\n"
    )
