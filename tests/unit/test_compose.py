"""The Docker deployment path, checked without Docker.

No Docker engine exists on the build machines, so nothing here starts a container.
Instead the files are checked against what they must agree with: ``Settings`` (every
``FOREWARN_*`` variable, its default, the host ports), the console script in
``pyproject.toml``, the Grafana provisioning, the InfluxDB measurement contract and
``docs/deployment.md``. Each check is a function of the project root that returns a
list of problems, so the same checks also run on deliberately broken copies
(``test_checks_catch_a_broken_copy``) to show that they can fail.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import SecretStr

from pipeline.settings import Settings
from schemas import AlertAction, Severity

REPO = Path(__file__).resolve().parents[2]
COMPOSE = "docker-compose.yml"
DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
GRAFANA_DIR = "infra/grafana"
DASHBOARD_DIR = "infra/grafana/dashboards"
DOCS = "docs/deployment.md"

Problems = list[str]
Check = Callable[[Path], Problems]


@dataclass(frozen=True)
class Series:
    """What the worker writes to one InfluxDB measurement."""

    fields: frozenset[str]
    tags: frozenset[str]


# The contract between the worker's InfluxDB sink (pipeline/streaming/lineprotocol.py,
# health.py) and the dashboards; docs/deployment.md has the same table.
MEASUREMENTS: dict[str, Series] = {
    # Fields are the metrics as each device sends them: no fixed set.
    "reading": Series(fields=frozenset(), tags=frozenset({"device_id", "device_type"})),
    "prediction": Series(
        fields=frozenset(
            {"risk", "failure_probability", "anomaly_score", "model_version", "top_factor"}
        ),
        tags=frozenset({"device_id", "device_type", "group"}),
    ),
    "alert": Series(
        fields=frozenset({"risk", "alert_id", "reason", "top_factors", "explanation"}),
        tags=frozenset({"device_id", "device_type", "group", "severity", "action"}),
    ),
    "device_risk": Series(
        fields=frozenset(
            {
                "risk",
                "failure_probability",
                "anomaly_score",
                "model_version",
                "top_factor",
                "alert_open",
                "reading_ts",
            }
        ),
        tags=frozenset({"device_id", "device_type", "group"}),
    ),
    "fleet_risk": Series(
        fields=frozenset(
            {
                "readings",
                "risk_sum",
                "risk_max",
                "failure_probability_sum",
                "anomaly_score_sum",
                "alerts_open",
                "model_version",
            }
        ),
        tags=frozenset({"group", "worker", "run"}),
    ),
    "model_health": Series(
        fields=frozenset(
            {
                "roc_auc",
                "fdr",
                "far",
                "alerts",
                "labels_positive",
                "labels_negative",
                "drift_events",
                "model_version",
            }
        ),
        tags=frozenset({"group"}),
    ),
    "pipeline_health": Series(
        fields=frozenset(
            {
                "readings_per_second",
                "readings",
                "consumer_lag",
                "rejected",
                "duplicates",
                "write_errors",
                "buffered_points",
                "models_refused",
            }
        ),
        tags=frozenset({"worker"}),
    ),
}
# Tags whose values come from a schema literal: a dashboard may only filter on those.
TAG_VALUES: dict[str, frozenset[str]] = {
    "action": frozenset(get_args(AlertAction)),
    "severity": frozenset(get_args(Severity)),
}
DASHBOARD_TITLES = frozenset({"Fleet risk", "Model health", "Pipeline health", "Device drill-down"})
BUCKET = "forewarn"
DATASOURCE_UID = "forewarn-influxdb"

SERVICES = frozenset({"kafka", "influxdb", "grafana", "topics", "worker", "replayer"})
FOREWARN_COMMANDS = {
    "topics": ["topics", "create"],
    "worker": ["worker"],
    "replayer": ["replay", "backblaze"],
}
IMAGES = {
    "kafka": r"apache/kafka:4\.1\.\d+",
    "influxdb": r"influxdb:2\.7(\.\d+)?",
    "grafana": r"grafana/grafana:\d+\.\d+\.\d+",
}
# service -> {dependency: condition}
DEPENDENCIES = {
    "grafana": {"influxdb": "service_healthy"},
    "topics": {"kafka": "service_healthy"},
    "worker": {
        "kafka": "service_healthy",
        "influxdb": "service_healthy",
        "topics": "service_completed_successfully",
    },
    "replayer": {"kafka": "service_healthy", "topics": "service_completed_successfully"},
}
# The servers; the worker has no health endpoint (see docker-compose.yml).
LONG_RUNNING = frozenset({"kafka", "influxdb", "grafana"})
ONE_SHOT = frozenset({"topics", "replayer"})
# Host variables compose reads that are not Settings fields (documented in DOCS).
DEPLOYMENT_VARIABLES = frozenset({"REPLAY_DATA_DIR", "REPLAY_FILE", "GRAFANA_ADMIN_PASSWORD"})
INFLUX_INIT = {
    "DOCKER_INFLUXDB_INIT_ORG": "influx_org",
    "DOCKER_INFLUXDB_INIT_BUCKET": "influx_bucket",
    "DOCKER_INFLUXDB_INIT_USERNAME": "influx_username",
    "DOCKER_INFLUXDB_INIT_PASSWORD": "influx_password",
    "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN": "influx_token",
}
WORKER_FIELDS = frozenset(
    {
        "kafka_bootstrap",
        "influx_url",
        "influx_org",
        "influx_bucket",
        "influx_token",
        "model_signing_key",
    }
)
INFLUX_CONTAINER_PORT = 8086
GRAFANA_PORT = 3000
LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- settings


def _env_name(field: str) -> str:
    return f"FOREWARN_{field.upper()}"


def _field_of(variable: str) -> str | None:
    """The Settings field a ``FOREWARN_*`` variable names, or None."""
    if not variable.startswith("FOREWARN_"):
        return None
    field = variable.removeprefix("FOREWARN_").lower()
    return field if field in Settings.model_fields else None


def _default_text(field: str) -> str:
    """A field's default as the string a compose default must spell."""
    default = Settings.model_fields[field].default
    if isinstance(default, SecretStr):
        return default.get_secret_value()
    return str(default)


def _secret_fields() -> list[str]:
    return [
        name for name, info in Settings.model_fields.items() if isinstance(info.default, SecretStr)
    ]


def _default_port(address: str) -> int:
    port = urlsplit(address if "://" in address else f"//{address}").port
    assert port is not None, address
    return port


# ------------------------------------------------------------- compose interpolation

# Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR:+alt}, $VAR, $$.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


@dataclass(frozen=True)
class Reference:
    """One variable reference in a compose value."""

    name: str
    op: str  # "", ":-", "-", ":?", "?", ":+", "+"
    arg: str
    text: str


def _references(text: str) -> Iterator[Reference | str]:
    """Every reference in ``text``; a malformed one is yielded as a problem string."""
    for match in _VARIABLE.finditer(text):
        if match["escaped"]:
            continue
        if match["named"]:
            yield Reference(match["named"], "", "", match[0])
            continue
        braced = _BRACED.fullmatch(match["braced"])
        if braced is None or "$" in (braced["arg"] or ""):
            yield f"malformed or nested variable reference {match[0]!r}"
            continue
        yield Reference(braced["name"], braced["op"] or "", braced["arg"] or "", match[0])


def _interpolate(text: str, env: dict[str, str]) -> str:
    """``text`` as compose would see it with environment ``env`` (compose's rules)."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        parsed = _BRACED.fullmatch(match["braced"] or match["named"] or "")
        assert parsed is not None, match[0]
        name, op, arg = parsed["name"], parsed["op"] or "", parsed["arg"] or ""
        value = env.get(name)
        unset_or_empty = not value
        if op in (":-", "-"):
            use_default = unset_or_empty if op == ":-" else value is None
            return arg if use_default else (value or "")
        if op in (":?", "?"):
            missing = unset_or_empty if op == ":?" else value is None
            assert not missing, f"{name} is required: {arg}"
            return value or ""
        if op in (":+", "+"):
            present = not unset_or_empty if op == ":+" else value is not None
            return arg if present else ""
        return value or ""

    return _VARIABLE.sub(one, text)


def _resolve(node: Any, env: dict[str, str]) -> Any:
    """Interpolate every string in a parsed compose document."""
    if isinstance(node, str):
        return _interpolate(node, env)
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, env) for value in node]
    return node


# -------------------------------------------------------------------------- loading


def _compose_raw(root: Path) -> dict[str, Any]:
    """The compose file as written (variables not yet substituted)."""
    document = yaml.safe_load((root / COMPOSE).read_text())
    assert isinstance(document, dict), "compose file is not a mapping"
    return document


def _compose(root: Path) -> dict[str, Any]:
    """The compose file as compose sees it with no variable set: the defaults."""
    resolved = _resolve(_compose_raw(root), {})
    assert isinstance(resolved, dict)
    return resolved


def _strings(node: Any) -> Iterator[str]:
    """Every key and string value of a parsed YAML document (comments are gone)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    services = compose.get("services")
    assert isinstance(services, dict), "compose file has no services"
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return [str(word) for word in command] if isinstance(command, list) else [str(command)]


@dataclass(frozen=True)
class Port:
    """One published port."""

    host_ip: str
    published: int
    target: int


def _ports(service: dict[str, Any]) -> Iterator[Port | str]:
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            yield Port(
                str(entry.get("host_ip", "")),
                int(entry.get("published", 0)),
                int(entry["target"]),
            )
            continue
        parts = str(entry).split("/")[0].split(":")
        if len(parts) == 3 and all(parts[1:]):
            yield Port(parts[0], int(parts[1]), int(parts[2]))
        elif len(parts) == 2:
            yield Port("", int(parts[0]), int(parts[1]))
        else:
            yield f"port {entry!r} does not name host, published and container ports"


@dataclass(frozen=True)
class Mount:
    """One volume entry of a service."""

    source: str
    target: str
    read_only: bool

    @property
    def is_bind(self) -> bool:
        return self.source.startswith((".", "/", "~"))


def _mounts(service: dict[str, Any]) -> Iterator[Mount]:
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            yield Mount(
                str(entry.get("source", "")),
                str(entry["target"]),
                bool(entry.get("read_only", False)),
            )
            continue
        parts = str(entry).split(":")
        read_only = len(parts) == 3 and "ro" in parts[2].split(",")
        yield Mount(parts[0], parts[1] if len(parts) > 1 else parts[0], read_only)


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {name: (host, port)}."""
    result = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        result[name] = (host, int(port))
    return result


# --------------------------------------------------------------------- compose checks


def check_services(root: Path) -> Problems:
    """The expected services, images, builds and commands."""
    problems: Problems = []
    services = _services(_compose(root))
    if set(services) != SERVICES:
        problems.append(f"services are {sorted(services)}, expected {sorted(SERVICES)}")
    for name, pattern in IMAGES.items():
        image = str(services.get(name, {}).get("image", ""))
        if not re.fullmatch(pattern, image):
            problems.append(f"{name}: image {image!r} is not {pattern}")
    for name, expected in FOREWARN_COMMANDS.items():
        service = services.get(name, {})
        build = service.get("build")
        context = build.get("context") if isinstance(build, dict) else build
        dockerfile = build.get("dockerfile", DOCKERFILE) if isinstance(build, dict) else DOCKERFILE
        if context != "." or dockerfile != DOCKERFILE:
            problems.append(f"{name}: not built from ./{DOCKERFILE} (build: {build!r})")
        command = _command(service)
        if command[: len(expected)] != expected:
            problems.append(f"{name}: command {command} does not start with {expected}")
    replay = _command(services.get("replayer", {}))
    if len(replay) != 3 or not replay[2].startswith("/data/"):
        problems.append(f"replayer: command {replay} does not replay a file under /data/")
    return problems


def check_variables(root: Path) -> Problems:
    """Every FOREWARN_* name is a Settings field; every compose variable has its default."""
    problems: Problems = []
    text = "\n".join(_strings(_compose_raw(root)))  # keys and values, not comments
    for name in sorted(set(re.findall(r"\bFOREWARN_[A-Z0-9_]+", text))):
        if _field_of(name) is None:
            problems.append(f"{name} is not a Settings field (FOREWARN_<FIELD>)")
    for reference in _references(text):
        if isinstance(reference, str):
            problems.append(reference)
            continue
        field = _field_of(reference.name)
        if field is None and reference.name not in DEPLOYMENT_VARIABLES:
            problems.append(
                f"{reference.text}: {reference.name} is neither a Settings field nor one "
                f"of the documented deployment variables {sorted(DEPLOYMENT_VARIABLES)}"
            )
        elif reference.op != ":-":
            problems.append(f"{reference.text}: give a default with ':-'")
        elif field is not None and reference.arg != _default_text(field):
            problems.append(
                f"{reference.text}: default {reference.arg!r} differs from Settings."
                f"{field} = {_default_text(field)!r}"
            )
    return problems


def check_environment(root: Path) -> Problems:
    """InfluxDB is initialised from, and the worker reads, the same FOREWARN_* values."""
    problems: Problems = []
    raw = _services(_compose_raw(root))
    influx = _environment(raw.get("influxdb", {}))
    if influx.get("DOCKER_INFLUXDB_INIT_MODE") != "setup":
        problems.append("influxdb: DOCKER_INFLUXDB_INIT_MODE is not 'setup'")
    for key, field in INFLUX_INIT.items():
        expected = f"${{{_env_name(field)}:-{_default_text(field)}}}"
        if influx.get(key) != expected:
            problems.append(f"influxdb: {key} is {influx.get(key)!r}, expected {expected!r}")
    worker = _environment(raw.get("worker", {}))
    for field in sorted(WORKER_FIELDS):
        if _env_name(field) not in worker:
            problems.append(f"worker: {_env_name(field)} is not set")
    for name, service in raw.items():
        for key, value in _environment(service).items():
            for reference in _references(value):
                if (
                    isinstance(reference, Reference)
                    and _field_of(key) is not None
                    and reference.name != key
                ):
                    problems.append(f"{name}: {key} is fed from {reference.name}")
    return problems


def check_secrets(root: Path) -> Problems:
    """Secrets arrive only by variable: never literal in compose, image or provisioning."""
    problems: Problems = []
    compose_text = (root / COMPOSE).read_text()
    without_references = _VARIABLE.sub("", compose_text)
    dockerfile = (root / DOCKERFILE).read_text()
    provisioning = {
        path: path.read_text() for path in sorted((root / GRAFANA_DIR).rglob("*")) if path.is_file()
    }
    for field in _secret_fields():
        variable, value = _env_name(field), _default_text(field)
        if value in without_references:
            problems.append(f"{COMPOSE}: the value of {variable} is written out literally")
        if variable in dockerfile or value in dockerfile:
            problems.append(f"{DOCKERFILE}: bakes {variable} into the image")
        for path, text in provisioning.items():
            if value in text:
                problems.append(f"{path.relative_to(root)}: the value of {variable} is literal")
        for name, service in _services(_compose_raw(root)).items():
            given = _environment(service).get(variable)
            if given is not None and not given.startswith(f"${{{variable}"):
                problems.append(f"{name}: {variable} is not passed as ${{{variable}...}}")
    return problems


def check_ports(root: Path) -> Problems:
    """Host ports on loopback and equal to the Settings defaults; in-network addresses."""
    problems: Problems = []
    services = _services(_compose(root))
    published: dict[str, list[Port]] = {}
    for name, service in services.items():
        for port in _ports(service):
            if isinstance(port, str):
                problems.append(f"{name}: {port}")
                continue
            published.setdefault(name, []).append(port)
            if port.host_ip != LOOPBACK:
                problems.append(f"{name}: port {port.published} is not bound to {LOOPBACK}")
    for name in FOREWARN_COMMANDS:
        if published.get(name):
            problems.append(f"{name}: publishes host ports (it could not be scaled)")

    bootstrap = str(Settings.model_fields["kafka_bootstrap"].default)
    influx_url = str(Settings.model_fields["influx_url"].default)
    expected = {
        "kafka": _default_port(bootstrap),
        "influxdb": _default_port(influx_url),
        "grafana": GRAFANA_PORT,
    }
    for name, host_port in expected.items():
        if [p.published for p in published.get(name, [])] != [host_port]:
            problems.append(
                f"{name}: publishes {published.get(name)}, expected host port {host_port}"
            )
    influx_ports = published.get("influxdb", [])
    if influx_ports and influx_ports[0].target != INFLUX_CONTAINER_PORT:
        problems.append(f"influxdb: container port is not {INFLUX_CONTAINER_PORT}")
    grafana_ports = published.get("grafana", [])
    if grafana_ports and grafana_ports[0].target != GRAFANA_PORT:
        problems.append(f"grafana: container port is not {GRAFANA_PORT}")

    # Kafka: the published container port is the listener advertised as the host bootstrap.
    kafka_env = _environment(services.get("kafka", {}))
    listeners = _listeners(kafka_env.get("KAFKA_LISTENERS", ""))
    advertised = _listeners(kafka_env.get("KAFKA_ADVERTISED_LISTENERS", ""))
    host_listener = [n for n, (h, p) in advertised.items() if f"{h}:{p}" == bootstrap]
    if len(host_listener) != 1:
        problems.append(f"kafka: no advertised listener is the host bootstrap {bootstrap}")
    else:
        target = listeners.get(host_listener[0], ("", 0))[1]
        if [p.target for p in published.get("kafka", [])] != [target]:
            problems.append(f"kafka: published port does not reach listener {host_listener[0]}")
    in_network = {f"{h}:{p}" for h, p in advertised.values() if h == "kafka"}
    influx_in_network = f"http://influxdb:{INFLUX_CONTAINER_PORT}"
    for name in FOREWARN_COMMANDS:
        env = _environment(services.get(name, {}))
        if env.get("FOREWARN_KAFKA_BOOTSTRAP") not in in_network:
            problems.append(
                f"{name}: FOREWARN_KAFKA_BOOTSTRAP={env.get('FOREWARN_KAFKA_BOOTSTRAP')!r} "
                f"is not an in-network listener {sorted(in_network)}"
            )
        if "FOREWARN_INFLUX_URL" in env and env["FOREWARN_INFLUX_URL"] != influx_in_network:
            problems.append(f"{name}: FOREWARN_INFLUX_URL is not {influx_in_network}")
    return problems


def check_kafka(root: Path) -> Problems:
    """A single KRaft node: combined roles, one replica everywhere, no auto-created topics."""
    problems: Problems = []
    service = _services(_compose(root)).get("kafka", {})
    env = _environment(service)
    if set(env.get("KAFKA_PROCESS_ROLES", "").split(",")) != {"broker", "controller"}:
        problems.append("kafka: KAFKA_PROCESS_ROLES is not broker,controller")
    if env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") != "false":
        problems.append("kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE is not 'false'")
    required = {
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
    }
    for key in sorted(required - set(env)):
        problems.append(f"kafka: {key} is not set")
    for key, value in env.items():
        if re.search(r"REPLICATION_FACTOR|MIN_ISR|MIN_INSYNC_REPLICAS", key) and value != "1":
            problems.append(f"kafka: {key}={value}, a single node needs 1")
    listeners = _listeners(env.get("KAFKA_LISTENERS", ""))
    advertised = _listeners(env.get("KAFKA_ADVERTISED_LISTENERS", ""))
    protocols = dict(
        item.split(":", 1)
        for item in env.get("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "").split(",")
    )
    controller = env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "")
    for name in set(listeners) | set(advertised):
        if name not in protocols:
            problems.append(f"kafka: listener {name} has no security protocol")
    for name in advertised:
        if name not in listeners or name == controller:
            problems.append(f"kafka: advertised listener {name} is not a broker listener")
    if env.get("KAFKA_INTER_BROKER_LISTENER_NAME") not in advertised:
        problems.append("kafka: the inter-broker listener is not advertised")
    node_id = env.get("KAFKA_NODE_ID", "")
    voters = f"{node_id}@kafka:{listeners.get(controller, ('', 0))[1]}"
    if controller not in listeners or env.get("KAFKA_CONTROLLER_QUORUM_VOTERS") != voters:
        problems.append(f"kafka: KAFKA_CONTROLLER_QUORUM_VOTERS is not {voters}")
    try:
        cluster_id = base64.urlsafe_b64decode(env.get("CLUSTER_ID", "") + "==")
    except (binascii.Error, ValueError):
        cluster_id = b""
    if len(cluster_id) != 16:
        problems.append("kafka: CLUSTER_ID is not a base64url-encoded 16-byte id")
    targets = {mount.target for mount in _mounts(service)}
    if env.get("KAFKA_LOG_DIRS") not in targets:
        problems.append("kafka: KAFKA_LOG_DIRS is not on a volume")
    return problems


def check_dependencies(root: Path) -> Problems:
    """Healthchecks on every server; start order through depends_on conditions."""
    problems: Problems = []
    services = _services(_compose(root))
    for name in sorted(LONG_RUNNING):
        test = (services.get(name, {}).get("healthcheck") or {}).get("test")
        if not test or (isinstance(test, list) and test[0] == "NONE"):
            problems.append(f"{name}: no healthcheck")
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on has no conditions")
            continue
        for dependency, spec in depends.items():
            condition = (spec or {}).get("condition")
            healthcheck = (services.get(dependency, {}).get("healthcheck") or {}).get("test")
            if condition == "service_healthy" and not healthcheck:
                problems.append(f"{name}: waits for {dependency} to be healthy; it has no check")
            if condition == "service_completed_successfully" and dependency not in ONE_SHOT:
                problems.append(f"{name}: waits for long-running {dependency} to exit")
    for name, expected in DEPENDENCIES.items():
        depends = services.get(name, {}).get("depends_on") or {}
        for dependency, condition in expected.items():
            spec = depends.get(dependency) if isinstance(depends, dict) else None
            actual = (spec or {}).get("condition")
            if actual != condition:
                problems.append(f"{name}: depends on {dependency} with {actual}, not {condition}")
    for name in sorted(ONE_SHOT):
        if str(services.get(name, {}).get("restart", "no")) != "no":
            problems.append(f"{name}: a one-shot service must not restart")
    return problems


def check_mounts(root: Path) -> Problems:
    """Bind mounts under the repository exist; provisioning and data are read-only."""
    problems: Problems = []
    raw_services = _services(_compose_raw(root))
    compose = _compose(root)
    declared = set((compose.get("volumes") or {}).keys())
    for name, service in _services(compose).items():
        raw_entries = raw_services.get(name, {}).get("volumes") or []
        for raw, mount in zip(raw_entries, _mounts(service), strict=True):
            if not mount.is_bind:
                if mount.source not in declared:
                    problems.append(f"{name}: named volume {mount.source} is not declared")
                continue
            if not mount.read_only:
                problems.append(f"{name}: bind mount {mount.source} is not read-only")
            source = raw.get("source", "") if isinstance(raw, dict) else str(raw)
            if source.startswith("$"):
                continue  # A deployment variable (REPLAY_DATA_DIR): the user's path.
            if not (root / mount.source).exists():
                problems.append(f"{name}: bind mount {mount.source} does not exist")
    return problems


# --------------------------------------------------------------------- grafana checks


def _grafana_bind_to_host(root: Path, container_path: str) -> Path | None:
    """The host path a grafana container path comes from, through its bind mounts."""
    service = _services(_compose(root)).get("grafana", {})
    for mount in _mounts(service):
        if mount.is_bind and (
            container_path == mount.target or container_path.startswith(mount.target + "/")
        ):
            return root / mount.source / container_path[len(mount.target) :].lstrip("/")
    return None


def check_grafana(root: Path) -> Problems:
    """The datasource uses the token by variable; the dashboard provider reads the mount."""
    problems: Problems = []
    grafana = _services(_compose_raw(root)).get("grafana", {})
    grafana_env = _environment(grafana)
    datasources: list[dict[str, Any]] = []
    for path in sorted((root / GRAFANA_DIR).rglob("*.y*ml")):
        document = yaml.safe_load(path.read_text()) or {}
        values = "\n".join(_strings(document))
        # Grafana expands $VAR in provisioning files; $$ is a literal $ (alert templates).
        variables = re.findall(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)", values.replace("$$", ""))
        for variable in sorted(set(variables)):
            if variable not in grafana_env:
                problems.append(f"{path.name}: ${variable} is not in the grafana environment")
        datasources.extend(document.get("datasources") or [])
        for provider in document.get("providers") or []:
            container_path = str((provider.get("options") or {}).get("path", ""))
            host = _grafana_bind_to_host(root, container_path)
            if host is None or not any(host.glob("*.json")):
                problems.append(f"{path.name}: provider path {container_path} has no dashboards")
    influx = [d for d in datasources if d.get("uid") == DATASOURCE_UID]
    if len(influx) != 1:
        return [*problems, f"no single datasource with uid {DATASOURCE_UID}"]
    datasource = influx[0]
    json_data = datasource.get("jsonData") or {}
    token = (datasource.get("secureJsonData") or {}).get("token")
    if datasource.get("type") != "influxdb" or json_data.get("version") != "Flux":
        problems.append("datasource: not an InfluxDB Flux datasource")
    if datasource.get("url") != f"http://influxdb:{INFLUX_CONTAINER_PORT}":
        problems.append(f"datasource: url {datasource.get('url')} is not the influxdb service")
    if token not in ("$FOREWARN_INFLUX_TOKEN", "${FOREWARN_INFLUX_TOKEN}"):
        problems.append("datasource: the token is not $FOREWARN_INFLUX_TOKEN")
    if json_data.get("organization") not in ("$FOREWARN_INFLUX_ORG", "${FOREWARN_INFLUX_ORG}"):
        problems.append("datasource: the organization is not $FOREWARN_INFLUX_ORG")
    home = grafana_env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home is not None:
        host = _grafana_bind_to_host(root, home)
        if host is None or not host.is_file():
            problems.append(f"grafana: home dashboard {home} is not a mounted file")
    return problems


_FROM = re.compile(r"\bfrom\s*\(")
_BUCKET = re.compile(r"\bbucket\s*:\s*(\"[^\"]*\"|[^,)\s]+)")
_MEASUREMENT_USE = re.compile(r"r\._measurement\b|r\[\"_measurement\"\]")
_MEASUREMENT = re.compile(r"(?:r\._measurement\b|r\[\"_measurement\"\])\s*==\s*\"([^\"]+)\"")
_FIELD_USE = re.compile(r"r\._field\b|r\[\"_field\"\]")
_FIELD = re.compile(r"(?:r\._field\b|r\[\"_field\"\])\s*==\s*\"([^\"]+)\"")
_COLUMN = re.compile(r"\br\.([A-Za-z][A-Za-z0-9_]*)|\br\[\"([^\"_][^\"]*)\"\]")
_COLUMN_LIST = re.compile(r"\b(?:columns|rowKey|columnKey)\s*:\s*\[([^\]]*)\]")
_COLUMN_ONE = re.compile(r"\bcolumn\s*:\s*\"([^\"]+)\"")
_TAG_VALUE = re.compile(r"\br\.([A-Za-z][A-Za-z0-9_]*)\s*==\s*\"([^\"]*)\"")


def flux_problems(query: str) -> Problems:
    """A Flux query reads bucket forewarn and only the contract's names."""
    problems: Problems = []
    buckets = _BUCKET.findall(query)
    if len(_FROM.findall(query)) > len(buckets) or not buckets:
        problems.append("a from() without a bucket")
    problems.extend(
        f"reads bucket {bucket}, not {BUCKET!r}" for bucket in buckets if bucket != f'"{BUCKET}"'
    )
    # A panel about "now" may start its range a fixed span before the range's end.
    if "v.timeRangeStart" not in query and "from: v.timeRangeStop)" not in query:
        problems.append("ignores the dashboard time range (v.timeRangeStart)")
    measurements = _MEASUREMENT.findall(query)
    if not measurements or len(measurements) != len(_MEASUREMENT_USE.findall(query)):
        problems.append('does not select its measurements with r._measurement == "..."')
    unknown = sorted(set(measurements) - set(MEASUREMENTS))
    if unknown:
        problems.append(f"reads unknown measurements {unknown}")
    known = [MEASUREMENTS[m] for m in measurements if m in MEASUREMENTS]
    fields = set().union(*(series.fields for series in known))
    tags = set().union(*(series.tags for series in known))
    selected = _FIELD.findall(query)
    if len(selected) != len(_FIELD_USE.findall(query)):
        problems.append('selects fields other than with r._field == "..."')
    for field in sorted(set(selected) - fields):
        problems.append(f"reads field {field!r}, not one of {sorted(fields)}")
    columns = {a or b for a, b in _COLUMN.findall(query)}
    for listed in _COLUMN_LIST.findall(query):
        columns.update(re.findall(r"\"([^\"]+)\"", listed))
    columns.update(_COLUMN_ONE.findall(query))
    for column in sorted(c for c in columns - tags - fields if not c.startswith("_")):
        problems.append(f"uses column {column!r}, neither a tag nor a field it reads")
    for tag, value in _TAG_VALUE.findall(query):
        if tag in TAG_VALUES and value not in TAG_VALUES[tag]:
            problems.append(f"filters {tag} == {value!r}, not one of {sorted(TAG_VALUES[tag])}")
    return problems


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def check_dashboards(root: Path) -> Problems:
    """Every dashboard parses; every query reads bucket forewarn and the contract only."""
    problems: Problems = []
    titles: list[str] = []
    read: dict[str, set[str]] = {name: set() for name in MEASUREMENTS}
    paths = sorted((root / DASHBOARD_DIR).rglob("*.json"))
    for path in paths:
        where = path.relative_to(root)
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            problems.append(f"{where}: does not parse: {error}")
            continue
        titles.append(str(dashboard.get("title")))
        if not dashboard.get("uid"):
            problems.append(f"{where}: no uid")
        queries: list[tuple[str, str]] = []
        for panel in _panels(dashboard.get("panels") or []):
            title = str(panel.get("title"))
            targets = panel.get("targets") or []
            if panel.get("type") != "row" and not targets:
                problems.append(f"{where}: panel {title!r} has no query")
            for item in [panel, *targets]:
                uid = (item.get("datasource") or {}).get("uid")
                if "datasource" in item and uid != DATASOURCE_UID:
                    problems.append(f"{where}: panel {title!r} uses datasource {uid!r}")
            queries.extend((title, str(target.get("query", ""))) for target in targets)
        for variable in (dashboard.get("templating") or {}).get("list") or []:
            if isinstance(variable.get("query"), str) and variable.get("type") == "query":
                queries.append((f"${variable.get('name')}", variable["query"]))
        for title, query in queries:
            problems.extend(f"{where}: {title!r} {p}" for p in flux_problems(query))
            for measurement in _MEASUREMENT.findall(query):
                read.setdefault(measurement, set()).update(_FIELD.findall(query))
    if sorted(titles) != sorted(DASHBOARD_TITLES):
        problems.append(f"dashboards are {sorted(titles)}, expected {sorted(DASHBOARD_TITLES)}")
    for name, series in MEASUREMENTS.items():
        for field in sorted(series.fields - read.get(name, set())):
            problems.append(f"no dashboard shows {name}.{field}")
    return problems


# ------------------------------------------------------------------ dockerfile checks


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            result.append((keyword.upper(), arguments.strip()))
    return result


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i])))
            i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` is left out of the build context; the last matching line wins."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for line in patterns:
        negated = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        if pattern and any(_glob_regex(pattern).match(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def check_dockerfile(root: Path) -> Problems:
    """python:3.11-slim, non-root, ``pip install .``, entrypoint = the console script."""
    problems: Problems = []
    instructions = _instructions((root / DOCKERFILE).read_text())
    ignore = [
        line.strip()
        for line in (root / DOCKERIGNORE).read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    if not stages:
        return ["Dockerfile: no FROM"]
    for keyword, arguments in instructions:
        if keyword == "FROM" and arguments.split()[0] != "python:3.11-slim":
            problems.append(f"Dockerfile: FROM {arguments} is not python:3.11-slim")
        if keyword == "COPY" and "--from=" not in arguments:
            sources = [word for word in arguments.split()[:-1] if not word.startswith("--")]
            for source in sources:
                if not (root / source).exists():
                    problems.append(f"Dockerfile: COPY source {source} does not exist")
                elif dockerignored(source, ignore):
                    problems.append(f"Dockerfile: COPY source {source} is in {DOCKERIGNORE}")
        for variable in re.findall(r"\bFOREWARN_[A-Z0-9_]+", arguments):
            if _field_of(variable) is None:
                problems.append(f"Dockerfile: {variable} is not a Settings field")
    final = instructions[stages[-1] :]
    users = [arguments.split(":")[0] for keyword, arguments in final if keyword == "USER"]
    if not users or users[-1] in ("root", "0"):
        problems.append("Dockerfile: the runtime stage does not switch to a non-root USER")
    entrypoints = [arguments for keyword, arguments in final if keyword == "ENTRYPOINT"]
    try:
        entrypoint = json.loads(entrypoints[-1]) if entrypoints else None
    except json.JSONDecodeError:
        entrypoint = None
    if not isinstance(entrypoint, list) or entrypoint[:1] != [next(iter(scripts), None)]:
        problems.append(
            f"Dockerfile: ENTRYPOINT {entrypoints[-1:]} is not the exec form of the console "
            f"script {sorted(scripts)} from pyproject.toml"
        )
    installs = [a for k, a in instructions if k == "RUN" and re.search(r"pip install\b.* \.$", a)]
    if not installs:
        problems.append("Dockerfile: no RUN ... pip install .")
    for private in (".git/HEAD", ".venv/bin/python", ".env", "tests/unit/test_compose.py"):
        if not dockerignored(private, ignore):
            problems.append(f"{DOCKERIGNORE}: {private} would be sent to the build")
    return problems


# ------------------------------------------------------------------------ docs check


def check_docs(root: Path) -> Problems:
    """The deployment doc names every measurement, field, tag, service and variable."""
    path = root / DOCS
    if not path.is_file():
        return [f"{DOCS} is missing"]
    text = path.read_text()
    names = set(SERVICES) | DEPLOYMENT_VARIABLES | set(MEASUREMENTS)
    for series in MEASUREMENTS.values():
        names |= series.fields | series.tags
    return [
        f"{DOCS} does not mention `{name}`" for name in sorted(names) if f"`{name}`" not in text
    ]


# ----------------------------------------------------------------------------- tests

CHECKS: dict[str, Check] = {
    "services": check_services,
    "variables": check_variables,
    "environment": check_environment,
    "secrets": check_secrets,
    "ports": check_ports,
    "kafka": check_kafka,
    "dependencies": check_dependencies,
    "mounts": check_mounts,
    "grafana": check_grafana,
    "dashboards": check_dashboards,
    "dockerfile": check_dockerfile,
    "docs": check_docs,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_deployment_files_pass_the_check(name: str) -> None:
    assert CHECKS[name](REPO) == []


def test_defaults_resolve_like_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert _interpolate("${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} ${SET:-d} $$SET $SET", env) == (
        "d d  x $SET x"
    )
    assert _interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", env) == "alt||alt"
    with pytest.raises(AssertionError, match="required"):
        _interpolate("${UNSET:?set it}", env)


def test_dockerignore_matching() -> None:
    patterns = ["*", "!pipeline/", "**/__pycache__"]
    assert dockerignored(".venv/bin/python", patterns)
    assert not dockerignored("pipeline/cli/__init__.py", patterns)
    assert dockerignored("pipeline/__pycache__/x.pyc", patterns)


def test_default_replay_file_exists_where_the_data_is() -> None:
    replayer = _services(_compose(REPO))["replayer"]
    source = next(m.source for m in _mounts(replayer) if m.target == "/data")
    data_dir = REPO / source
    if not data_dir.is_dir():
        pytest.skip(f"{data_dir} is not on this machine")
    assert (data_dir / _command(replayer)[-1].removeprefix("/data/")).is_file()


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    version = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, check=False
    )
    if version.returncode != 0:
        pytest.skip("no docker compose plugin (only the engine-less client is here)")
    result = subprocess.run(
        [docker, "compose", "-f", str(REPO / COMPOSE), "--profile", "replay", "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------- the checks can fail (mutants)

COPIED = (COMPOSE, DOCKERFILE, DOCKERIGNORE, "pyproject.toml", "README.md", DOCS, GRAFANA_DIR)


def _copy_project(destination: Path) -> Path:
    """The files the checks read, plus what the Dockerfile copies, in a fresh tree."""
    sources = set(COPIED)
    for keyword, arguments in _instructions((REPO / DOCKERFILE).read_text()):
        if keyword == "COPY" and "--from=" not in arguments:
            sources.update(w for w in arguments.split()[:-1] if not w.startswith("--"))
    for relative in sorted(sources):
        source, target = REPO / relative, destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, target)
    return destination


def _replace(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"mutant target {old!r} is no longer in {path.name}"
    path.write_text(text.replace(old, new, count))


def _edit_compose(root: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    document = _compose_raw(root)
    edit(_services(document))
    (root / COMPOSE).write_text(yaml.safe_dump(document, sort_keys=False))


def _edit_first_query(root: Path, old: str, new: str) -> None:
    path = root / DASHBOARD_DIR / "forewarn" / "fleet-risk.json"
    dashboard = json.loads(path.read_text())
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if old in target["query"]:
                target["query"] = target["query"].replace(old, new, 1)
                path.write_text(json.dumps(dashboard))
                return
    raise AssertionError(f"mutant target {old!r} is in no fleet-risk query")


def _drop_dependency_condition(services: dict[str, Any]) -> None:
    services["worker"]["depends_on"]["influxdb"]["condition"] = "service_started"


def _drop_healthcheck(services: dict[str, Any]) -> None:
    del services["influxdb"]["healthcheck"]


def _drop_replayer(services: dict[str, Any]) -> None:
    del services["replayer"]


Mutant = tuple[str, Callable[[Path], None], str]

MUTANTS: dict[str, Mutant] = {
    "unknown FOREWARN variable": (
        "variables",
        lambda r: _replace(r / COMPOSE, 'FOREWARN_LOG_FORMAT: "json"', 'FOREWARN_BROKERS: "json"'),
        "FOREWARN_BROKERS",
    ),
    "default differs from Settings": (
        "variables",
        lambda r: _replace(
            r / COMPOSE, "${FOREWARN_INFLUX_ORG:-forewarn}", "${FOREWARN_INFLUX_ORG:-acme}"
        ),
        "differs from Settings.influx_org",
    ),
    "undocumented host variable": (
        "variables",
        lambda r: _replace(r / COMPOSE, "${REPLAY_DATA_DIR:-", "${DATA:-"),
        "DATA is neither",
    ),
    "influx init not fed from settings": (
        "environment",
        lambda r: _replace(r / COMPOSE, '"${FOREWARN_INFLUX_BUCKET:-forewarn}"', '"metrics"'),
        "DOCKER_INFLUXDB_INIT_BUCKET",
    ),
    "literal token in compose": (
        "secrets",
        lambda r: _replace(
            r / COMPOSE, '"${FOREWARN_INFLUX_TOKEN:-forewarn-dev-token}"', '"forewarn-dev-token"'
        ),
        "FOREWARN_INFLUX_TOKEN is written out literally",
    ),
    "secret baked into the image": (
        "secrets",
        lambda r: _replace(
            r / DOCKERFILE, "USER 10001", "ENV FOREWARN_MODEL_SIGNING_KEY=k\nUSER 10001"
        ),
        "bakes FOREWARN_MODEL_SIGNING_KEY",
    ),
    "literal token in provisioning": (
        "secrets",
        lambda r: _replace(
            r / GRAFANA_DIR / "datasources" / "influxdb.yaml",
            "$FOREWARN_INFLUX_TOKEN",
            "forewarn-dev-token",
        ),
        "influxdb.yaml: the value of FOREWARN_INFLUX_TOKEN",
    ),
    "port open on every interface": (
        "ports",
        lambda r: _replace(r / COMPOSE, '"127.0.0.1:8086:8086"', '"8086:8086"'),
        "not bound to 127.0.0.1",
    ),
    "grafana host port moved": (
        "ports",
        lambda r: _replace(r / COMPOSE, '"127.0.0.1:3000:3000"', '"127.0.0.1:3001:3000"'),
        "expected host port 3000",
    ),
    "kafka advertises the wrong host address": (
        "ports",
        lambda r: _replace(r / COMPOSE, "HOST://127.0.0.1:9092", "HOST://localhost:9092"),
        "host bootstrap 127.0.0.1:9092",
    ),
    "topics auto-created": (
        "kafka",
        lambda r: _replace(
            r / COMPOSE,
            'KAFKA_AUTO_CREATE_TOPICS_ENABLE: "false"',
            'KAFKA_AUTO_CREATE_TOPICS_ENABLE: "true"',
        ),
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE",
    ),
    "replication factor 3 on one node": (
        "kafka",
        lambda r: _replace(
            r / COMPOSE,
            'KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "1"',
            'KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: "3"',
        ),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR=3",
    ),
    "worker does not wait for influxdb health": (
        "dependencies",
        lambda r: _edit_compose(r, _drop_dependency_condition),
        "worker: depends on influxdb",
    ),
    "influxdb without healthcheck": (
        "dependencies",
        lambda r: _edit_compose(r, _drop_healthcheck),
        "influxdb: no healthcheck",
    ),
    "service missing": (
        "services",
        lambda r: _edit_compose(r, _drop_replayer),
        "expected",
    ),
    "bind mount of a missing folder": (
        "mounts",
        lambda r: _replace(r / COMPOSE, "./infra/grafana/dashboards:", "./infra/grafana/boards:"),
        "./infra/grafana/boards does not exist",
    ),
    "datasource token not by variable": (
        "grafana",
        lambda r: _replace(
            r / GRAFANA_DIR / "datasources" / "influxdb.yaml", "$FOREWARN_INFLUX_TOKEN", "abc"
        ),
        "the token is not",
    ),
    "query of another bucket": (
        "dashboards",
        lambda r: _edit_first_query(r, 'bucket: "forewarn"', 'bucket: "telegraf"'),
        'reads bucket "telegraf"',
    ),
    "query of an unknown measurement": (
        "dashboards",
        lambda r: _edit_first_query(r, '"fleet_risk"', '"fleet_risks"'),
        "unknown measurements ['fleet_risks']",
    ),
    "query of an unknown field": (
        "dashboards",
        lambda r: _edit_first_query(r, 'r._field == "risk"', 'r._field == "risk_score"'),
        "reads field 'risk_score'",
    ),
    "query of an unknown tag": (
        "dashboards",
        lambda r: _edit_first_query(r, 'r.action == "raise"', 'r.state == "raise"'),
        "column 'state'",
    ),
    "query of an impossible tag value": (
        "dashboards",
        lambda r: _edit_first_query(r, 'r.action == "raise"', 'r.action == "open"'),
        "filters action == 'open'",
    ),
    "dashboard that does not parse": (
        "dashboards",
        lambda r: _replace(r / DASHBOARD_DIR / "forewarn" / "model-health.json", "{", "{{"),
        "does not parse",
    ),
    "entrypoint is not the console script": (
        "dockerfile",
        lambda r: _replace(
            r / DOCKERFILE, 'ENTRYPOINT ["forewarn"]', 'ENTRYPOINT ["forewarn-cli"]'
        ),
        "is not the exec form of the console script",
    ),
    "runs as root": (
        "dockerfile",
        lambda r: _replace(r / DOCKERFILE, "USER 10001:10001", "USER root"),
        "non-root USER",
    ),
    "another base image": (
        "dockerfile",
        lambda r: _replace(r / DOCKERFILE, "FROM python:3.11-slim AS build", "FROM python:3.12"),
        "is not python:3.11-slim",
    ),
    "build context lets .venv in": (
        "dockerfile",
        lambda r: _replace(r / DOCKERIGNORE, "\n*\n", "\n"),
        ".venv/bin/python would be sent",
    ),
    "docs miss a field": (
        "docs",
        lambda r: _replace(r / DOCS, "`drift_events`", "drift", count=-1),
        "`drift_events`",
    ),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_checks_catch_a_broken_copy(mutant: str, tmp_path: Path) -> None:
    check_name, mutate, expected = MUTANTS[mutant]
    check = CHECKS[check_name]
    pristine = check(_copy_project(tmp_path / "pristine"))
    broken_root = _copy_project(tmp_path / "broken")
    mutate(broken_root)
    new = [problem for problem in check(broken_root) if problem not in pristine]
    assert any(expected in problem for problem in new), new
