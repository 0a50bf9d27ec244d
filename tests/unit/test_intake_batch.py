"""Batched telemetry at intake: one envelope, every reading validated and refused alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import topics
from pipeline.partitioner import partition_for
from pipeline.streaming.intake import (
    MAX_INPUT_BYTES,
    Rejection,
    decode,
    decode_many,
    rejected,
)
from schemas import FailureEvent, Rejected, Telemetry
from schemas.telemetry import MAX_BATCH_BYTES, MAX_BATCH_READINGS, TelemetryBatch

PARTITIONS = 4


def reading(device_id: str, day: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "ts": f"2013-04-{day:02d}T00:00:00Z",
        "device_type": "ST3000",
        "metrics": {"smart_5_raw": float(day)},
        **extra,
    }


def devices_on(partition: int, count: int) -> list[str]:
    """The first ``count`` device ids ``D0``, ``D1``, ... that map to ``partition``."""
    ids = (f"D{n}" for n in range(10_000))
    return [d for d in ids if partition_for(d, PARTITIONS) == partition][:count]


def batch(*readings: Any, **envelope: Any) -> bytes:
    return json.dumps({"schema_version": 1, **envelope, "readings": list(readings)}).encode()


def decode_batch(value: bytes, partition: int | None = 1) -> list[tuple[int | None, Any]]:
    return decode_many(topics.TELEMETRY, None, value, partition=partition, partitions=PARTITIONS)


def test_a_valid_batch_gives_every_reading_in_order_with_its_index() -> None:
    ids = devices_on(1, 3)
    decoded = decode_batch(batch(*(reading(d) for d in ids)))
    assert [index for index, _ in decoded] == [0, 1, 2]
    assert [r.device_id for _, r in decoded if isinstance(r, Telemetry)] == ids


def test_a_bad_reading_in_the_middle_costs_only_itself() -> None:
    a, b, c = devices_on(1, 3)
    bad = reading(b, metrics={"smart_5_raw": "x"})
    decoded = decode_batch(batch(reading(a), bad, reading(c)))
    assert [index for index, _ in decoded] == [0, 1, 2]
    first, middle, last = (result for _, result in decoded)
    assert isinstance(first, Telemetry)
    assert first.device_id == a
    assert isinstance(last, Telemetry)
    assert last.device_id == c
    assert isinstance(middle, Rejection)
    assert middle.reason.startswith("invalid Telemetry: metrics.smart_5_raw")
    assert middle.value is not None
    assert json.loads(middle.value) == bad


@pytest.mark.parametrize(
    ("bad", "reason_part"),
    [
        (b"42", "<message>: Input should be an object"),
        (b'"text"', "<message>: Input should be an object"),
        (b"null", "<message>: Input should be an object"),
        (b'{"device_id": "D"}', "ts: Field required"),
        (json.dumps(reading("D1")).replace("10.0", "NaN").encode(), "metrics.smart_5_raw"),
        (json.dumps(reading("D1")).replace("10.0", "1e400").encode(), "metrics.smart_5_raw"),
        (json.dumps(reading("D1", colour="red")).encode(), "colour: Extra inputs"),
        (json.dumps(reading("D1", readings=[])).encode(), "readings: Extra inputs"),
        (json.dumps(reading("D1")).replace("Z", "").encode(), "ts: Input should have timezone"),
    ],
)
def test_every_kind_of_bad_reading_is_refused_alone(bad: bytes, reason_part: str) -> None:
    a, b = devices_on(1, 2)
    value = b'{"readings": [%s, %s, %s]}' % (
        json.dumps(reading(a)).encode(),
        bad,
        json.dumps(reading(b)).encode(),
    )
    decoded = decode_batch(value)
    assert [index for index, _ in decoded] == [0, 1, 2]
    first, refused, last = (result for _, result in decoded)
    assert isinstance(first, Telemetry)
    assert first.device_id == a
    assert isinstance(last, Telemetry)
    assert last.device_id == b
    assert isinstance(refused, Rejection), refused
    assert reason_part in refused.reason
    assert refused.value is not None


def test_a_reading_of_another_partition_is_refused_naming_both_partitions() -> None:
    (here,) = devices_on(1, 1)
    (there,) = devices_on(3, 1)
    decoded = decode_batch(batch(reading(here), reading(there)))
    assert isinstance(decoded[0][1], Telemetry)
    index, refused = decoded[1]
    assert index == 1
    assert isinstance(refused, Rejection)
    assert refused.reason == (
        f"device {there!r} maps to partition 3 of {PARTITIONS}, not to this batch's partition 1"
    )
    assert refused.value is not None
    assert Telemetry.model_validate_json(refused.value).device_id == there


def test_without_a_partition_the_placement_is_not_checked() -> None:
    ids = devices_on(0, 1) + devices_on(3, 1)
    decoded = decode_batch(batch(*(reading(d) for d in ids)), partition=None)
    assert all(isinstance(result, Telemetry) for _, result in decoded)


def test_the_key_of_a_batch_is_free() -> None:
    ids = devices_on(2, 2)
    for key in (None, b"gateway-7", b"\xff"):
        decoded = decode_many(
            topics.TELEMETRY,
            key,
            batch(*(reading(d) for d in ids)),
            partition=2,
            partitions=PARTITIONS,
        )
        assert [type(result) for _, result in decoded] == [Telemetry, Telemetry]


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        (b'{"readings": [', "Invalid JSON: EOF while parsing"),
        (b'{"readings": 5}', "invalid TelemetryBatch: readings: Input should be a valid array"),
        (b'{"readings": []}', "invalid TelemetryBatch: readings: List should have at least 1"),
        (batch(reading("D1"), gateway="g"), "invalid TelemetryBatch: gateway: Extra inputs"),
        (batch(reading("D1"), schema_version=2), "schema_version: Input should be less than"),
        (batch(reading("D1"), schema_version="1"), "schema_version: Input should be a valid"),
        (b'{"readin\\u0067s": 5}', "invalid TelemetryBatch: readings"),
        (
            batch(*[reading("D1")] * (MAX_BATCH_READINGS + 1)),
            f"List should have at most {MAX_BATCH_READINGS} items",
        ),
        (
            b'{"readings": ["' + b"x" * MAX_BATCH_BYTES + b'"]}',
            f"exceeds the {MAX_BATCH_BYTES}-byte limit of a batch",
        ),
    ],
)
def test_a_bad_envelope_is_one_rejection_without_index(value: bytes, reason_part: str) -> None:
    decoded = decode_batch(value)
    assert len(decoded) == 1
    index, result = decoded[0]
    assert index is None
    assert isinstance(result, Rejection)
    assert reason_part in result.reason
    assert result.value is None  # the dead letter keeps the whole payload


def test_a_batch_fits_many_readings_a_single_message_could_not() -> None:
    ids = devices_on(1, 1) * 1000
    value = batch(*(reading(d, day=1 + n % 28) for n, d in enumerate(ids)))
    assert MAX_INPUT_BYTES < len(value) <= MAX_BATCH_BYTES
    assert len(decode_batch(value)) == 1000


def test_a_single_message_keeps_todays_behaviour() -> None:
    (device,) = devices_on(3, 1)
    value = json.dumps(reading(device)).encode()
    for key in (device.encode(), b"other", None):
        decoded = decode_many(topics.TELEMETRY, key, value, partition=1, partitions=PARTITIONS)
        assert decoded == [(None, decode(topics.TELEMETRY, key, value))]
    refused = decode_many(topics.TELEMETRY, b"other", value, partition=1, partitions=PARTITIONS)
    assert isinstance(refused[0][1], Rejection)
    assert "does not match" in refused[0][1].reason


def test_a_reading_that_merely_mentions_readings_is_a_single_reading() -> None:
    value = json.dumps(
        reading("D1", metrics={"readings": 3.0}, tags={"note": "readings \u00e9"})
    ).encode()
    assert b'"readings"' in value
    assert b"\\u" in value
    (index, result), *rest = decode_many(
        topics.TELEMETRY, b"D1", value, partition=0, partitions=PARTITIONS
    )
    assert index is None
    assert not rest
    assert isinstance(result, Telemetry)
    assert result.metrics == {"readings": 3.0}


def test_other_topics_never_read_batches() -> None:
    value = batch({"device_id": "D1", "ts": "2013-04-10T00:00:00Z"})
    ((index, result),) = decode_many(
        topics.FAILURES, b"D1", value, partition=0, partitions=PARTITIONS
    )
    assert index is None
    assert isinstance(result, Rejection)
    assert "invalid FailureEvent" in result.reason
    ok = json.dumps({"device_id": "D1", "ts": "2013-04-10T00:00:00Z"}).encode()
    ((_, event),) = decode_many(topics.FAILURES, b"D1", ok, partition=0, partitions=PARTITIONS)
    assert isinstance(event, FailureEvent)


def test_the_dead_letter_names_the_index_and_keeps_the_readings_own_json() -> None:
    a, b = devices_on(1, 2)
    bad = reading(b, metrics={"smart_5_raw": "x"})
    value = batch(reading(a), bad)
    (_, refused) = decode_batch(value)[1]
    assert isinstance(refused, Rejection)
    envelope = rejected(
        refused, topic="telemetry", partition=1, offset=77, key=None, value=value, index=1
    )
    again = Rejected.model_validate_json(envelope.model_dump_json())
    assert (again.source_topic, again.partition, again.offset, again.index) == (
        "telemetry",
        1,
        77,
        1,
    )
    assert json.loads(again.value) == bad
    whole = rejected(
        Rejection("invalid TelemetryBatch: x"),
        topic="telemetry",
        partition=1,
        offset=78,
        key=b"k",
        value=value,
    )
    assert whole.index is None
    assert whole.value == value


def test_the_schema_documents_readings_as_telemetry() -> None:
    schema = TelemetryBatch.model_json_schema()
    readings = schema["properties"]["readings"]
    assert readings["items"] == {"$ref": "#/$defs/Telemetry"}
    assert (readings["minItems"], readings["maxItems"]) == (1, MAX_BATCH_READINGS)
    assert schema["$defs"]["Telemetry"] == Telemetry.model_json_schema()
    assert schema["required"] == ["readings"]
    assert "readings" not in Telemetry.model_json_schema()["properties"]
    assert Telemetry.model_json_schema()["additionalProperties"] is False


@given(st.binary(max_size=500))
def test_decode_many_never_raises(value: bytes) -> None:
    for prefix in (b"", b'{"readings": ['):
        for _, result in decode_batch(prefix + value):
            assert isinstance(result, Telemetry | Rejection)


@given(
    st.lists(
        st.one_of(
            st.builds(reading, st.sampled_from(["D1", "D2", "D5", "D9"])),
            st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
            st.integers(),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_every_reading_of_a_batch_gets_exactly_one_outcome(items: list[Any]) -> None:
    decoded = decode_batch(batch(*items), partition=None)
    assert [index for index, _ in decoded] == list(range(len(items)))
    for (_, result), item in zip(decoded, items, strict=True):
        assert isinstance(result, Telemetry) == (isinstance(item, dict) and "metrics" in item)


def test_the_gateway_field_case_loses_only_its_bad_readings() -> None:
    """tests/fixtures/field_cases/consumed_gateway_batches.jsonl, message by message."""
    path = Path(__file__).parents[1] / "fixtures" / "field_cases" / "consumed_gateway_batches.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    outcomes: list[list[tuple[int | None, str]]] = []
    for row in rows:
        value = json.dumps(row["value"]).encode()
        key = None if "readings" in row["value"] else row["value"]["device_id"].encode()
        decoded = decode_many(row["topic"], key, value, partition=row["partition"], partitions=4)
        outcomes.append(
            [
                (index, result.reason.split(":")[0] if isinstance(result, Rejection) else "ok")
                for index, result in decoded
            ]
        )
    assert outcomes == [
        [(0, "ok"), (1, "ok"), (2, "ok")],
        [
            (0, "ok"),
            (1, "invalid Telemetry"),
            (2, "device 'ZL200001' maps to partition 3 of 4, not to this batch's partition 1"),
            (3, "invalid Telemetry"),
            (4, "invalid Telemetry"),
            (5, "ok"),
        ],
        [(None, "ok")],
        [(None, "invalid TelemetryBatch")],
        [(0, "ok"), (1, "ok")],
    ]
    bad_batch = json.dumps(rows[1]["value"]).encode()
    refused = decode_many(topics.TELEMETRY, None, bad_batch, partition=1, partitions=4)
    for index, result in refused:
        if isinstance(result, Rejection):
            assert index is not None
            assert result.value is not None
            assert json.loads(result.value) == rows[1]["value"]["readings"][index]
    ((_, whole),) = decode_many(
        topics.TELEMETRY, None, json.dumps(rows[3]["value"]).encode(), partition=1, partitions=4
    )
    assert isinstance(whole, Rejection)
    assert "readings: Input should be a valid array" in whole.reason


def test_a_repeated_readings_member_counts_once_the_last_as_json_parsers_do() -> None:
    here, there = devices_on(1, 1)[0], devices_on(0, 1)[0]
    first = json.dumps([reading(here)])
    last = json.dumps([reading(there), reading(here)])
    value = f'{{"readings": {first}, "readings": {last}}}'.encode()
    decoded = decode_batch(value)
    assert [index for index, _ in decoded] == [0, 1]
    refused, kept = (result for _, result in decoded)
    assert isinstance(kept, Telemetry)
    assert isinstance(refused, Rejection)
    assert refused.value is not None
    assert json.loads(refused.value) == reading(there)
