"""The AsyncAPI document: valid against the official 3.0.0 schema and true to topics.py."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from pipeline import topics
from pipeline.asyncapi import CONTRACTS, build_document
from pipeline.cli import _register_commands, app
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = Settings(topic_prefix="acme.", topic_partitions=6)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    """The official AsyncAPI 3.0.0 JSON Schema (npm @asyncapi/specs, fetched once)."""
    fetched = subprocess.run(
        ["bash", str(REPO / "infra/local/asyncapi-spec.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    schema = json.loads(Path(fetched.stdout.strip()).read_text())
    assert schema["$id"] == "http://asyncapi.com/definitions/3.0.0/asyncapi.json"
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document(SETTINGS)


def _errors(validator: jsonschema.Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


def test_the_document_is_valid_asyncapi_3(
    validator: jsonschema.Draft7Validator, document: dict[str, Any]
) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert _errors(validator, document) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("asyncapi",), "3.0"),
        (("channels", "alerts", "address"), 5),
        (("operations", "produceAlert", "action"), "publish"),
        (("channels", "alerts", "bindings", "kafka", "partitions"), 0),
    ],
)
def test_the_validator_rejects_a_broken_document(
    validator: jsonschema.Draft7Validator,
    document: dict[str, Any],
    path: tuple[str, ...],
    value: Any,
) -> None:
    broken = copy.deepcopy(document)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert _errors(validator, broken)


def test_every_topic_is_described_as_topics_py_configures_it(document: dict[str, Any]) -> None:
    assert set(CONTRACTS) == {spec.name for spec in topics.TOPICS}
    channels = document["channels"]
    assert set(channels) == {spec.name for spec in topics.TOPICS}
    for spec in topics.TOPICS:
        channel = channels[spec.name]
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == kafka["topic"] == "acme." + spec.name
        assert kafka["partitions"] == spec.partition_count(SETTINGS)
        assert kafka["topicConfiguration"] == {
            "cleanup.policy": [spec.cleanup_policy],
            "retention.ms": spec.retention_ms,
            "max.message.bytes": spec.max_message_bytes,
        }
        for word in ("Key:", "Partitioning:", "Ordering:", "Delivery:", "Cleanup policy:"):
            assert word in channel["description"], (spec.name, word)
        assert all(channel[key] for key in ("x-key", "x-delivery", "x-ordering"))
    assert document["channels"]["models"]["bindings"]["kafka"]["partitions"] == 1
    assert "co-partitioned" in document["channels"]["telemetry"]["x-partitioning"]


def test_every_example_is_a_valid_message(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    checked = 0
    for name, contract in CONTRACTS.items():
        if contract.model is None:
            continue
        assert contract.example is not None, name
        contract.model.model_validate_json(json.dumps(contract.example))  # as a consumer would
        message = document["components"]["messages"][contract.model.__name__]
        assert message["examples"][0]["payload"] == contract.example
        schema = {**schemas[contract.model.__name__], "components": {"schemas": schemas}}
        jsonschema.Draft202012Validator(schema).validate(contract.example)
        checked += 1
        for variant in contract.variants:
            variant.model.model_validate_json(json.dumps(variant.example))
            message = document["components"]["messages"][variant.model.__name__]
            assert message["examples"][0]["payload"] == variant.example
            schema = {**schemas[variant.model.__name__], "components": {"schemas": schemas}}
            jsonschema.Draft202012Validator(schema).validate(variant.example)
    assert checked == len(topics.TOPICS) - 2  # all but the two internal changelogs


def test_telemetry_carries_single_readings_and_batches(document: dict[str, Any]) -> None:
    channel = document["channels"]["telemetry"]
    assert set(channel["messages"]) == {"Telemetry", "TelemetryBatch"}
    operation = document["operations"]["consumeTelemetry"]
    assert [m["$ref"].rsplit("/", 1)[1] for m in operation["messages"]] == [
        "Telemetry",
        "TelemetryBatch",
    ]
    schemas = document["components"]["schemas"]
    readings = schemas["TelemetryBatch"]["properties"]["readings"]
    assert readings["items"] == {"$ref": "#/components/schemas/Telemetry"}
    schema = {**schemas["TelemetryBatch"], "components": {"schemas": schemas}}
    with pytest.raises(jsonschema.ValidationError):  # the readings are documented as Telemetry
        jsonschema.Draft202012Validator(schema).validate({"readings": [{"device_id": "x"}]})


def test_forewarn_schemas_asyncapi_writes_the_document(tmp_path: Path) -> None:
    _register_commands()
    result = CliRunner().invoke(app, ["schemas", "--asyncapi", "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "asyncapi.json").read_text())
    assert written == json.loads(json.dumps(build_document(Settings())))
    assert f"{len(topics.TOPICS)} topics" in result.output
