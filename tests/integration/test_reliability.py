"""Every input accounted for, on the real Kafka and InfluxDB (shared servers, own namespace).

- adversarial ids are stored exactly and found by a Flux filter on the exact id;
- a point InfluxDB refuses is isolated and dead-lettered with the server's message;
- 10,000 generated messages (valid, near-valid, hostile) through one worker: one
  prediction point per accepted reading, one dead-letter envelope per rejected message;
- SIGKILL while a checkpoint sits between its InfluxDB write and its state write.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from influxdb_client.client.write_api import SYNCHRONOUS

from pipeline import topics
from pipeline.cli.engine_options import engine_config_for
from pipeline.datasets import Event
from pipeline.engine.lane import Lane
from pipeline.influx import count_points, flux_string
from pipeline.streaming.processor import DeviceRecord, Processor, Source
from schemas import Alert, Rejected, Telemetry
from tests.integration.harness import Deployment, wait_until

EARLIEST = "1677-09-22T00:00:00Z"
SINCE_2000 = "2000-01-01T00:00:00Z"
"""Queries of the refused-point test start here: a field stored as a string in one shard
(the planted 1990 point) hides the float values of other shards from a Flux query
spanning both."""
T0 = datetime(2024, 3, 1, tzinfo=UTC)

ADVERSARIAL_IDS = [
    "\\\\.\\PHYSICALDRIVE0",
    "ZA1,B2=C3 D",
    "a\\,b",
    "a\\=b c\\ d",
    "back\\slash\\\\inside",
    'quote"double',
    "quote'single",
    "  leading and trailing  ",
    "=,=",
    "ünïcödé-ÅØ",
    "emoji-😀-🔥",
    "Ελληνικά 中文",
    "x" * 200,
]
REFUSED_AT_INTAKE = ["HOST01 C:\\", "C:\\", "tab\there", "new\nline"]


def telemetry(device_id: str, day: int, value: float = 0.0, device_type: str = "T") -> bytes:
    return json.dumps(
        {
            "device_id": device_id,
            "ts": (T0 + timedelta(days=day)).isoformat(),
            "device_type": device_type,
            "metrics": {"smart_5_raw": value, "temp": 30.0 + day},
        }
    ).encode()


def predictions_of(deployment: Deployment, device_id: str) -> int:
    with deployment.client() as client:
        return count_points(
            client,
            deployment.settings,
            measurement="prediction",
            field="risk",
            start=SINCE_2000,
            tag_filter={"device_id": device_id},
        )


def count_all(deployment: Deployment, start: str = EARLIEST) -> int:
    with deployment.client() as client:
        return count_points(
            client, deployment.settings, measurement="prediction", field="risk", start=start
        )


def dead_letters(deployment: Deployment) -> list[Rejected]:
    return [
        Rejected.model_validate_json(value)
        for _, value in deployment.read_topic(topics.DEAD_LETTER, timeout_s=60)
    ]


def wait_for_dead_letters(deployment: Deployment, count: int) -> list[Rejected]:
    def enough() -> list[Rejected] | None:
        envelopes = dead_letters(deployment)
        return envelopes if len(envelopes) >= count else None

    result: list[Rejected] = wait_until(
        enough, timeout_s=120, what=f"{count} dead-letter envelopes"
    )
    return result


def test_adversarial_ids_are_stored_exactly_and_a_refused_point_is_isolated(
    deployment: Deployment,
) -> None:
    # A string "risk" in the 1990 shard makes InfluxDB refuse (400, field type conflict)
    # the one prediction point that lands there; every other point must still be stored.
    with deployment.client() as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=deployment.settings.influx_bucket,
            record='prediction,device_id=seed risk="text" 631152000000000000',
        )
    poison = json.dumps(
        {
            "device_id": "poison",
            "ts": "1990-01-02T00:00:00Z",
            "device_type": "T",
            "metrics": {"m": 1.0},
        }
    ).encode()
    deployment.start_worker()
    messages = [
        (device_id.encode(), telemetry(device_id, day, device_type=f"type {device_id[:20]}\\x"))
        for day in range(3)
        for device_id in ADVERSARIAL_IDS + REFUSED_AT_INTAKE
    ]
    deployment.produce(topics.TELEMETRY, [*messages[:20], (b"poison", poison), *messages[20:]])
    expected = 3 * len(ADVERSARIAL_IDS)
    wait_until(
        lambda: count_all(deployment, SINCE_2000) >= expected,
        timeout_s=180,
        what=f"{expected} predictions in InfluxDB",
    )

    for device_id in ADVERSARIAL_IDS:
        assert predictions_of(deployment, device_id) == 3, device_id
    query = (
        f"from(bucket: {flux_string(deployment.settings.influx_bucket)})"
        f" |> range(start: {SINCE_2000})"
        ' |> filter(fn: (r) => r._measurement == "prediction" and r._field == "risk")'
        ' |> keep(columns: ["device_id", "device_type"]) |> distinct(column: "device_id")'
    )
    with deployment.client() as client:
        stored = {
            record.get_value()
            for table in client.query_api().query(query, org=deployment.settings.influx_org)
            for record in table.records
        }
    assert stored == set(ADVERSARIAL_IDS)

    refused = wait_for_dead_letters(deployment, 3 * len(REFUSED_AT_INTAKE) + 1)
    by_source = Counter(envelope.source_topic for envelope in refused)
    assert by_source == {
        deployment.settings.topic(topics.TELEMETRY): 3 * len(REFUSED_AT_INTAKE),
        "influxdb": 1,
    }
    point = next(envelope for envelope in refused if envelope.source_topic == "influxdb")
    assert point.value.startswith(b"prediction,device_id=poison,")
    assert "conflict" in point.reason
    assert count_all(deployment, SINCE_2000) == expected


# -- fuzz ---------------------------------------------------------------------


def fuzz_messages(rng: random.Random, n: int) -> list[tuple[bytes | None, bytes]]:
    """``n`` telemetry messages: about 60 % valid, 25 % near-valid, 15 % hostile."""
    devices = [f"fz-{i:03d}" for i in range(60)] + ["fz \\ odd,=id", "fz-ü😀"]
    day_of = dict.fromkeys(devices, 0)
    out: list[tuple[bytes | None, bytes]] = []
    while len(out) < n:
        device = rng.choice(devices)
        roll = rng.random()
        if roll < 0.6:
            day_of[device] += 1
            value = rng.choice([0.0, 1.0, 8.0, 1e12, -3.5, 1e300, 5e-324])
            out.append((device.encode(), telemetry(device, day_of[device], value)))
            continue
        base = json.loads(telemetry(device, day_of[device] + 1))
        if roll < 0.85:
            mutation = rng.randrange(9)
            if mutation == 0:
                base["metrics"]["smart_5_raw"] = "8"  # a string, not a number
            elif mutation == 1:
                base["ts"] = "2024-03-01T00:00:00"  # naive
            elif mutation == 2:
                base["firmware"] = "x"  # unknown field
            elif mutation == 3:
                del base["device_type"]
            elif mutation == 4:
                base["ts"] = (T0 - timedelta(days=3650)).isoformat()  # clock went back
            elif mutation == 5:
                base["ts"] = "2200-01-01T00:00:00Z"  # from the future
            elif mutation == 6:
                base["device_id"] = device + "\\"  # trailing backslash
            elif mutation == 7:
                out.append((b"someone-else", json.dumps(base).encode()))  # key mismatch
                continue
            else:
                raw = json.dumps(base).replace("30.0", "NaN", 1).encode()
                out.append((device.encode(), raw))
                continue
            out.append((device.encode(), json.dumps(base).encode()))
        else:
            hostile = rng.randrange(6)
            if hostile == 0:
                payload = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200)))
            elif hostile == 1:
                payload = b"[" * 5000 + b"]" * 5000
            elif hostile == 2:
                payload = b"\xff\xfe" + device.encode()
            elif hostile == 3:
                payload = json.dumps(base).encode() + b" trailing"
            elif hostile == 4:
                payload = b'{"device_id": "' + b"z" * 70_000 + b'"}'
            else:
                payload = b""
            key = device.encode() if rng.random() < 0.8 else b"\xc3\x28"
            out.append((key, payload))
    return out


def expected_outcomes(
    messages: list[tuple[bytes | None, bytes]],
) -> tuple[int, int]:
    """(accepted readings, rejected messages) by the same pure core, in device order."""
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    records: dict[bytes | None, DeviceRecord] = {}
    accepted = rejected = 0
    for offset, (key, value) in enumerate(messages):
        outcome = processor.handle(
            Source(topics.TELEMETRY, 0, offset), key, value, records.get(key)
        )
        assert not outcome.internal_error, outcome.rejected
        if outcome.device_id is not None and key != outcome.device_id.encode():
            rejected += 1
            continue
        if outcome.record is not None:
            records[key] = outcome.record
        if outcome.rejected is not None:
            rejected += 1
        else:
            accepted += len(outcome.predictions)
    return accepted, rejected


def test_fuzz_every_message_is_accounted_for(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    messages = fuzz_messages(random.Random(8), 10_000)
    accepted, rejected = expected_outcomes(messages)
    assert accepted + rejected == len(messages)
    assert 5_000 < accepted < 7_000  # the mix is what the generator says it is

    worker = deployment.start_worker()
    started = time.monotonic()
    deployment.produce(topics.TELEMETRY, messages)
    deployment.wait_for_predictions(accepted, timeout_s=300)
    envelopes = wait_for_dead_letters(deployment, rejected)
    record_property("messages", len(messages))
    record_property("scored", accepted)
    record_property("dead_lettered", rejected)
    record_property("seconds", round(time.monotonic() - started, 1))
    assert worker.process.poll() is None, "the worker must stay up"
    assert count_all(deployment) == accepted
    assert len(envelopes) == rejected
    places = Counter((e.partition, e.offset) for e in envelopes)
    assert [place for place, n in places.items() if n > 1] == []


# -- SIGKILL inside a checkpoint ---------------------------------------------------


def test_sigkill_between_points_and_state_loses_nothing_and_doubles_no_alert(
    deployment: Deployment,
    backblaze_slice: list[Event],
    record_property: Callable[[str, object], None],
) -> None:
    events = backblaze_slice
    expected = sum(1 for event in events if isinstance(event, Telemetry))
    worker = deployment.start_worker(FOREWARN_FAULT_PAUSE_AFTER_POINTS_S="30")
    deployment.replay(events)

    def paused_with_points() -> bool:
        paused = any(e.get("event") == "checkpoint_paused" for e in deployment.log_events())
        return paused and deployment.count_predictions() > 0

    wait_until(paused_with_points, timeout_s=180, what="a checkpoint paused after its points")
    written_before_kill = deployment.count_predictions()
    deployment.kill(worker)
    killed = time.monotonic()
    deployment.start_worker()
    deployment.wait_for_predictions(expected, timeout_s=300)
    record_property("readings", expected)
    record_property("stored_before_kill", written_before_kill)
    record_property("caught_up_s", round(time.monotonic() - killed, 1))
    assert deployment.count_predictions() == expected
    assert 0 < written_before_kill < expected

    raised = Counter(
        alert.alert_id
        for _, value in deployment.read_topic(topics.ALERTS)
        for alert in [Alert.model_validate_json(value)]
        if alert.action == "raise"
    )
    assert raised, "expected alerts on the slice"
    record_property("alerts_raised", len(raised))
    assert [alert_id for alert_id, n in raised.items() if n > 1] == []
