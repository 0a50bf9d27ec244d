"""The streaming service end to end, on the real Kafka and InfluxDB."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pipeline import topics
from pipeline.backtest.driver import run_backtest
from pipeline.cli.engine_options import engine_config_for
from pipeline.datasets import Event
from pipeline.engine import Scorer
from pipeline.streaming.lineprotocol import nanoseconds
from pipeline.streaming.signing import sign_snapshot
from pipeline.streaming.training import LANE_KEY_PREFIX
from schemas import Alert, Feedback, ModelSnapshot, Rejected, Telemetry, TrainingExample
from tests.integration.harness import Deployment, wait_until

REPO = Path(__file__).resolve().parents[2]
SECONDS_PER_DAY = 1.0


def readings(events: list[Event]) -> list[Telemetry]:
    return [event for event in events if isinstance(event, Telemetry)]


def alerts_on_topic(deployment: Deployment) -> list[Alert]:
    return [Alert.model_validate_json(value) for _, value in deployment.read_topic(topics.ALERTS)]


def alert_ids(alerts: list[Alert]) -> list[tuple[str, str]]:
    return sorted((alert.alert_id, alert.action) for alert in alerts)


def backtest_alerts(deployment: Deployment, events: list[Event]) -> list[tuple[str, str]]:
    config = engine_config_for("backblaze", deployment.settings.engine_overrides)
    result = run_backtest(events, config, partitions=deployment.settings.topic_partitions)
    assert result.models_published > 1, "models must change during the slice for this to bite"
    return alert_ids(result.alerts)


def equal_alerts(deployment: Deployment, expected: list[tuple[str, str]]) -> None:
    """Wait until the alerts topic holds exactly ``expected`` (held failures are applied
    once the worker's lanes go idle); fail with the difference otherwise."""
    try:
        wait_until(
            lambda: alert_ids(alerts_on_topic(deployment)) == expected,
            timeout_s=90,
            what="the backtest's alerts on the alerts topic",
        )
    except TimeoutError:
        streamed = alert_ids(alerts_on_topic(deployment))
        only_streamed = sorted(set(streamed) - set(expected))[:5]
        only_backtest = sorted(set(expected) - set(streamed))[:5]
        raise AssertionError(
            f"streamed {len(streamed)} alerts, the backtest {len(expected)}; only streamed: "
            f"{only_streamed}; only in the backtest: {only_backtest}"
        ) from None


def test_one_worker_flat_out_publishes_exactly_the_backtests_alerts(
    deployment: Deployment, backblaze_slice: list[Event]
) -> None:
    """The same slice through Kafka and through the in-process engine, replayed as fast
    as it goes: every reading gets its prediction, and the set of (alert id, action) the
    worker publishes is the backtest's, with no tolerance."""
    expected = backtest_alerts(deployment, backblaze_slice)
    deployment.start_worker()
    deployment.replay(backblaze_slice)
    deployment.wait_for_predictions(len(readings(backblaze_slice)))
    assert deployment.count_predictions() == len(readings(backblaze_slice))
    equal_alerts(deployment, expected)


def test_two_workers_publish_exactly_the_backtests_alerts(
    deployment: Deployment, backblaze_slice: list[Event]
) -> None:
    """Two workers share the partitions (one consumer group): same alerts as one."""
    expected = backtest_alerts(deployment, backblaze_slice)
    deployment.start_worker()
    deployment.start_worker()
    deployment.replay(backblaze_slice, seconds_per_day=SECONDS_PER_DAY / 2)
    deployment.wait_for_predictions(len(readings(backblaze_slice)))
    equal_alerts(deployment, expected)


def test_a_worker_killed_mid_stream_loses_nothing_and_doubles_no_alert(
    deployment: Deployment, backblaze_slice: list[Event], record_property: Any
) -> None:
    """Two workers share the partitions; one is SIGKILLed halfway: the survivor takes its
    partitions over with their device and lane state from the changelogs, every reading
    gets its prediction and no alert is published twice. The alerts equal the
    backtest's unless the kill lands while a checkpoint writes its states (step 3):
    device and lane records are two changelog writes, not one transaction, so a lane
    can come back one checkpoint behind its devices (docs/streaming.md, "Rebalances");
    the difference is recorded, not asserted."""
    expected = backtest_alerts(deployment, backblaze_slice)
    victim = deployment.start_worker()
    deployment.start_worker()
    half = len(backblaze_slice) // 2
    deployment.replay(backblaze_slice[:half], seconds_per_day=SECONDS_PER_DAY / 2)
    wait_until(
        lambda: deployment.count_predictions() >= len(readings(backblaze_slice)) // 3,
        timeout_s=240,
        what="a third of the predictions",
    )
    deployment.kill(victim)
    deployment.replay(backblaze_slice[half:], seconds_per_day=SECONDS_PER_DAY / 2)
    deployment.wait_for_predictions(len(readings(backblaze_slice)), timeout_s=300)
    assert deployment.count_predictions() == len(readings(backblaze_slice))
    alerts = alerts_on_topic(deployment)
    raised = Counter(a.alert_id for a in alerts if a.action == "raise")
    assert [alert_id for alert_id, n in raised.items() if n > 1] == []
    streamed = set(alert_ids(alerts))
    record_property("alerts_only_streamed", len(streamed - set(expected)))
    record_property("alerts_only_backtest", len(set(expected) - streamed))


BAD_MESSAGES: dict[str, bytes] = {
    "malformed JSON": b'{"device_id": "bad-1", "ts": ',
    "wrong type": json.dumps(
        {
            "device_id": "bad-2",
            "ts": "2013-04-10T00:00:00Z",
            "device_type": "x",
            "metrics": {"smart_5_raw": "many"},
        }
    ).encode(),
    "NaN": b'{"device_id": "bad-3", "ts": "2013-04-10T00:00:00Z", "device_type": "x",'
    b' "metrics": {"smart_5_raw": NaN}}',
    "unknown field": json.dumps(
        {
            "device_id": "bad-4",
            "ts": "2013-04-10T00:00:00Z",
            "device_type": "x",
            "metrics": {},
            "firmware": "CC4B",
        }
    ).encode(),
    "naive timestamp": json.dumps(
        {"device_id": "bad-5", "ts": "2013-04-10T00:00:00", "device_type": "x", "metrics": {}}
    ).encode(),
    "2 MB payload": json.dumps(
        {
            "device_id": "bad-6",
            "ts": "2013-04-10T00:00:00Z",
            "device_type": "x",
            "metrics": {},
            "tags": {"blob": "x" * (2 * 1024 * 1024)},
        }
    ).encode(),
}


def test_bad_input_goes_to_dead_letter_and_nothing_else_is_lost(
    deployment: Deployment, backblaze_slice: list[Event]
) -> None:
    good = readings(backblaze_slice)[:500]
    deployment.start_worker()
    deployment.replay(good[:250])
    deployment.produce(
        topics.TELEMETRY,
        [(f"bad-{i}".encode(), value) for i, value in enumerate(BAD_MESSAGES.values(), 1)],
    )
    deployment.replay(good[250:])
    deployment.wait_for_predictions(len(good))

    rejected = wait_until(
        lambda: (
            [
                Rejected.model_validate_json(value)
                for _, value in deployment.read_topic(topics.DEAD_LETTER)
            ]
            if len(deployment.read_topic(topics.DEAD_LETTER)) >= len(BAD_MESSAGES)
            else None
        ),
        timeout_s=60,
        what="every bad message in dead-letter",
    )
    assert len(rejected) == len(BAD_MESSAGES)
    by_key = {envelope.key: envelope for envelope in rejected}
    for i, (case, original) in enumerate(BAD_MESSAGES.items(), 1):
        envelope = by_key[f"bad-{i}".encode()]
        assert envelope.value == original, case
        assert envelope.reason, case
        assert envelope.source_topic == deployment.settings.topic(topics.TELEMETRY)
        assert envelope.offset is not None
    assert "exceeds" in by_key[b"bad-6"].reason
    assert "ts" in by_key[b"bad-5"].reason
    assert "firmware" in by_key[b"bad-4"].reason
    assert deployment.count_predictions() == len(good)


def test_crash_loses_no_reading_repeats_no_alert_and_keeps_device_history(
    deployment: Deployment, backblaze_slice: list[Event]
) -> None:
    events = backblaze_slice
    expected = len(readings(events))
    worker = deployment.start_worker()
    deployment.replay(events[: len(events) // 2], seconds_per_day=SECONDS_PER_DAY)
    wait_until(
        lambda: deployment.count_predictions() >= expected // 3,
        timeout_s=180,
        what="a third of the predictions",
    )
    deployment.kill(worker)
    deployment.start_worker()
    deployment.replay(events[len(events) // 2 :], seconds_per_day=SECONDS_PER_DAY)
    deployment.wait_for_predictions(expected)
    assert deployment.count_predictions() == expected

    raised = Counter(
        alert.alert_id for alert in alerts_on_topic(deployment) if alert.action == "raise"
    )
    assert raised, "expected alerts on the slice"
    assert [alert_id for alert_id, n in raised.items() if n > 1] == []

    # The anomaly score depends only on the device's own history: had the state not come
    # back from the changelog, readings after the restart would score as a new device's.
    scorer = Scorer(engine_config_for("backblaze", deployment.settings.engine_overrides))
    states: dict[str, object] = {}
    expected_scores: dict[tuple[str, int], float] = {}
    for event in readings(events):
        step = scorer.on_telemetry(states.get(event.device_id), event)  # type: ignore[arg-type]
        states[event.device_id] = step.state
        expected_scores[(event.device_id, nanoseconds(event.ts))] = step.predictions[
            0
        ].anomaly_score
    stored = deployment.prediction_field("anomaly_score")
    mismatched = [k for k, v in expected_scores.items() if abs(stored[k] - v) > 1e-9]
    assert mismatched == []


def test_tampered_and_unsigned_snapshots_are_refused_and_scoring_goes_on(
    deployment: Deployment, backblaze_slice: list[Event]
) -> None:
    good = readings(backblaze_slice)[:400]
    deployment.start_worker()
    deployment.replay(good[:200])
    deployment.wait_for_predictions(200)
    forged = sign_snapshot(
        SecretStr("not-the-deployment-key"),
        "ST3000DM001",
        999_999,
        {"pretend": "model"},
        examples_seen=1,
    )
    unsigned = forged.model_copy(update={"signature": "", "version": 999_998})
    deployment.produce(
        topics.MODELS,
        [
            (b"ST3000DM001", forged.model_dump_json().encode()),
            (b"ST3000DM001", unsigned.model_dump_json().encode()),
        ],
    )
    deployment.replay(good[200:])
    deployment.wait_for_predictions(len(good))
    refusals = wait_until(
        lambda: (
            [e for e in deployment.log_events() if e.get("event") == "model_snapshot_refused"]
            if len(
                [e for e in deployment.log_events() if e.get("event") == "model_snapshot_refused"]
            )
            >= 2
            else None
        ),
        timeout_s=30,
        what="both snapshots refused in the log",
    )
    assert {e["version"] for e in refusals} == {999_999, 999_998}
    versions = deployment.prediction_field("model_version")
    assert 999_999 not in versions.values()
    assert 999_998 not in versions.values()
    assert ModelSnapshot.model_validate_json(forged.model_dump_json()).version == 999_999


def test_false_alarm_feedback_clears_the_alert_and_becomes_a_negative_label(
    deployment: Deployment, backblaze_slice: list[Event]
) -> None:
    events = backblaze_slice
    deployment.start_worker()
    deployment.replay(events, seconds_per_day=SECONDS_PER_DAY)
    deployment.wait_for_predictions(len(readings(events)))
    open_alerts: dict[str, Alert] = {}
    for alert in alerts_on_topic(deployment):
        if alert.action == "raise":
            open_alerts[alert.device_id] = alert
        else:
            open_alerts.pop(alert.device_id, None)
    assert open_alerts, "expected an alert still open at the end of the slice"
    device_id, alert = sorted(open_alerts.items())[0]
    verdict = Feedback(
        device_id=device_id,
        ts=alert.ts + timedelta(hours=1),
        alert_id=alert.alert_id,
        verdict="false_alarm",
        technician="t.test",
    )
    deployment.produce(topics.FEEDBACK, [(device_id.encode(), verdict.model_dump_json().encode())])

    def cleared() -> list[Alert]:
        return [
            a
            for a in alerts_on_topic(deployment)
            if a.device_id == device_id and a.action == "clear" and a.alert_id == alert.alert_id
        ]

    clears = wait_until(cleared, timeout_s=60, what="the alert to clear")
    assert "false alarm" in clears[-1].reason

    def negatives() -> list[TrainingExample]:
        examples = [
            TrainingExample.model_validate_json(value)
            for key, value in deployment.read_topic(topics.TRAINING_EXAMPLES)
            if not (key or b"").startswith(LANE_KEY_PREFIX)  # lanes' watermark markers
        ]
        return [
            e
            for e in examples
            if e.device_id == device_id and e.source == "feedback" and not e.label
        ]

    assert wait_until(negatives, timeout_s=60, what="a negative label from the feedback")
