"""Grafana's provisioning files against the documented file formats (apiVersion 1).

The schemas below transcribe Grafana's provisioning documentation ("Provision Grafana":
data sources, dashboard providers; "Create and manage alerting resources using file
provisioning": alert rule groups) for the keys Forewarn uses; unknown top-level keys
are errors so a typo cannot pass. Each check also runs on a broken copy to show it
can fail.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

GRAFANA = Path(__file__).resolve().parents[2] / "infra" / "grafana"
DURATION = r"^[0-9]+(ms|s|m|h|d|w)$"
UID = r"^[a-zA-Z0-9_-]{1,40}$"

_QUERY_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["refId", "datasourceUid", "model"],
    "properties": {
        "refId": {"type": "string", "pattern": "^[A-Z]$"},
        "datasourceUid": {"type": "string", "minLength": 1},
        "queryType": {"type": "string"},
        "relativeTimeRange": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": {"type": "integer", "minimum": 0}, "to": {"type": "integer"}},
            "additionalProperties": False,
        },
        "model": {"type": "object", "required": ["refId"]},
    },
    "additionalProperties": False,
}

ALERTING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "groups"],
    "properties": {
        "apiVersion": {"const": 1},
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["orgId", "name", "folder", "interval", "rules"],
                "properties": {
                    "orgId": {"type": "integer", "minimum": 1},
                    "name": {"type": "string", "minLength": 1},
                    "folder": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["uid", "title", "condition", "data"],
                            "properties": {
                                "uid": {"type": "string", "pattern": UID},
                                "title": {"type": "string", "minLength": 1},
                                "condition": {"type": "string", "pattern": "^[A-Z]$"},
                                "data": {"type": "array", "minItems": 1, "items": _QUERY_ITEM},
                                "noDataState": {"enum": ["Alerting", "NoData", "OK"]},
                                "execErrState": {"enum": ["Alerting", "Error", "OK"]},
                                "for": {"type": "string", "pattern": DURATION},
                                "labels": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "annotations": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                                "isPaused": {"type": "boolean"},
                            },
                            "additionalProperties": False,
                        },
                    },
                },
                "additionalProperties": False,
            },
        },
        "deleteRules": {"type": "array"},
    },
    "additionalProperties": False,
}

DATASOURCES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "datasources"],
    "properties": {
        "apiVersion": {"const": 1},
        "datasources": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "type", "access", "url"],
                "properties": {
                    "name": {"type": "string"},
                    "uid": {"type": "string", "pattern": UID},
                    "type": {"type": "string"},
                    "access": {"enum": ["proxy", "direct"]},
                    "url": {"type": "string"},
                    "isDefault": {"type": "boolean"},
                    "editable": {"type": "boolean"},
                    "jsonData": {"type": "object"},
                    "secureJsonData": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

PROVIDERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "providers"],
    "properties": {
        "apiVersion": {"const": 1},
        "providers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "type", "options"],
                "properties": {
                    "name": {"type": "string"},
                    "orgId": {"type": "integer"},
                    "folder": {"type": "string"},
                    "type": {"const": "file"},
                    "disableDeletion": {"type": "boolean"},
                    "allowUiUpdates": {"type": "boolean"},
                    "updateIntervalSeconds": {"type": "integer"},
                    "options": {
                        "type": "object",
                        "required": ["path"],
                        "properties": {
                            "path": {"type": "string"},
                            "foldersFromFilesStructure": {"type": "boolean"},
                        },
                        "additionalProperties": False,
                    },
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "time"],
    "properties": {
        "uid": {"type": "string", "pattern": UID},
        "title": {"type": "string"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "time": {
            "type": "object",
            "required": ["from", "to"],
            "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
        },
        "templating": {
            "type": "object",
            "properties": {
                "list": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "name"],
                        "properties": {
                            "type": {"enum": ["query", "textbox", "custom", "constant"]}
                        },
                    },
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "type", "title", "gridPos"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["stat", "timeseries", "table", "row", "text", "bargauge"]},
                    "gridPos": {
                        "type": "object",
                        "required": ["x", "y", "w", "h"],
                        "properties": {
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                        },
                    },
                },
            },
        },
    },
}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _errors(schema: dict[str, Any], document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]


def _alert_rule_problems(document: Any) -> list[str]:
    problems = _errors(ALERTING_SCHEMA, document)
    uids: list[str] = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            uids.append(rule.get("uid"))
            refs = [item.get("refId") for item in rule.get("data", [])]
            if rule.get("condition") not in refs:
                problems.append(f"{rule.get('uid')}: condition {rule.get('condition')} is no refId")
            for item in rule.get("data", []):
                model = item.get("model", {})
                if model.get("refId") != item.get("refId"):
                    problems.append(f"{rule.get('uid')}: model refId differs from {item['refId']}")
                if item.get("datasourceUid") == "__expr__":
                    expression = str(model.get("expression", ""))
                    used = re.findall(r"\$+([A-Z])\b", expression) or [expression]
                    problems.extend(
                        f"{rule.get('uid')}: {item['refId']} reads unknown {ref}"
                        for ref in used
                        if ref not in refs
                    )
                elif "query" not in model:
                    problems.append(f"{rule.get('uid')}: {item['refId']} has no query")
    if len(uids) != len(set(uids)):
        problems.append("duplicate rule uid")
    return problems


def test_alert_rules_follow_the_file_provisioning_format() -> None:
    paths = sorted((GRAFANA / "alerting").glob("*.yaml"))
    assert paths
    titles = set()
    for path in paths:
        document = _yaml(path)
        assert _alert_rule_problems(document) == [], path.name
        titles |= {rule["title"] for group in document["groups"] for rule in group["rules"]}
    assert titles == {
        "Critical alerts raised",
        "Pipeline stalled",
        "InfluxDB write errors",
        "Model not updated for a day of event time",
    }


@pytest.mark.parametrize(
    "breakage",
    ["api version", "condition", "expression ref", "state", "unknown key"],
)
def test_the_alert_rule_check_catches_a_broken_copy(breakage: str) -> None:
    document = _yaml(GRAFANA / "alerting" / "forewarn-rules.yaml")
    broken = copy.deepcopy(document)
    rule = broken["groups"][0]["rules"][0]
    if breakage == "api version":
        broken["apiVersion"] = 2
    elif breakage == "condition":
        rule["condition"] = "Z"
    elif breakage == "expression ref":
        rule["data"][-1]["model"]["expression"] = "Q"
    elif breakage == "state":
        rule["noDataState"] = "Ok"
    else:
        rule["evaluateFor"] = "5m"
    assert _alert_rule_problems(broken)


def test_datasources_and_dashboard_providers_follow_the_documented_format() -> None:
    assert _errors(DATASOURCES_SCHEMA, _yaml(GRAFANA / "datasources" / "influxdb.yaml")) == []
    assert _errors(PROVIDERS_SCHEMA, _yaml(GRAFANA / "dashboards" / "forewarn.yaml")) == []
    broken = _yaml(GRAFANA / "dashboards" / "forewarn.yaml")
    broken["providers"][0]["type"] = "files"
    assert _errors(PROVIDERS_SCHEMA, broken)


def test_dashboards_follow_the_dashboard_json_model() -> None:
    paths = sorted((GRAFANA / "dashboards").rglob("*.json"))
    assert len(paths) == 4
    for path in paths:
        dashboard = json.loads(path.read_text())
        assert _errors(DASHBOARD_SCHEMA, dashboard) == [], path.name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
    drill = json.loads((GRAFANA / "dashboards" / "forewarn" / "device.json").read_text())
    assert [v["name"] for v in drill["templating"]["list"]] == ["device_id"]
    assert all("${device_id}" in t["query"] for p in drill["panels"] for t in p["targets"])
