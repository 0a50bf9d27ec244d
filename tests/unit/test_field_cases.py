"""Every file of ``tests/fixtures/field_cases`` (copied from ``shared/field-cases``) as a test.

Each file is fed message by message through the worker's pure core
(:class:`Processor`), as the agent would, and checked against what its README says a
user expects.
"""

from __future__ import annotations

import gzip
import json
import math
import pickle
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pipeline import topics
from pipeline.backtest.driver import run_backtest
from pipeline.cli.engine_options import engine_config_for
from pipeline.engine.lane import Lane
from pipeline.engine.state import MAX_DEVICE_METRICS, MAX_STATE_BYTES
from pipeline.streaming.processor import DeviceRecord, Outcome, Processor, Source
from schemas import Prediction, Telemetry, TrainingExample

CASES = Path(__file__).parents[1] / "fixtures" / "field_cases"


def messages(name: str) -> list[tuple[str, int | None, int | None, bytes]]:
    """``(topic, partition, offset, value)`` of every line; telemetry files get offsets."""
    path = CASES / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    out: list[tuple[str, int | None, int | None, bytes]] = []
    next_offset: dict[str, int] = {}
    for row in rows:
        if "topic" in row:
            topic, value = row["topic"], row["value"]
            partition, offset = row.get("partition"), row.get("offset")
        else:
            topic, value, partition, offset = topics.TELEMETRY, row, None, None
        if offset is None:
            partition = 0
            offset = next_offset.get(topic, 0)
        next_offset[topic] = offset + 1
        out.append((topic, partition, offset, json.dumps(value).encode()))
    return out


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    records: dict[str, DeviceRecord] = field(default_factory=dict)

    @property
    def predictions(self) -> list[Prediction]:
        return [p for o in self.outcomes for p in o.predictions]

    @property
    def examples(self) -> list[TrainingExample]:
        return [e for o in self.outcomes for e in o.examples]

    @property
    def reasons(self) -> list[str]:
        return [o.rejected.reason for o in self.outcomes if o.rejected is not None]


def _fleet_moves_on(rows: list[tuple[str, int | None, int | None, bytes]]) -> bytes:
    """A reading of another drive in the partition, a day after everything in ``rows``."""
    newest = max(datetime.fromisoformat(json.loads(v)["ts"]) for _, _, _, v in rows)
    reading = Telemetry(
        device_id="ZA1OTHER",
        ts=newest + timedelta(days=1),
        device_type="ST12000NM0008",
        metrics={"smart_5_raw": 0.0},
    )
    return reading.model_dump_json().encode()


def feed(name: str, *, fleet_moves_on: bool = False) -> Run:
    """Feed a field case through one lane's processor; ``fleet_moves_on``: then a reading
    of another device dated after it all (what releases held failures in a fleet)."""
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    run = Run()
    rows = messages(name)
    if fleet_moves_on:
        rows.append((topics.TELEMETRY, 0, len(rows), _fleet_moves_on(rows)))
    for topic, partition, offset, value in rows:
        device_id = json.loads(value)["device_id"]
        before = run.records.get(device_id)
        before_state = pickle.dumps(before.state) if before and before.state else None
        outcome = processor.handle(
            Source(topic, partition, offset),
            device_id.encode(),
            value,
            before,
            record_of=run.records.get,
        )
        assert not outcome.internal_error, outcome.rejected
        if outcome.rejected is not None and before is not None and before.state is not None:
            # A refused message leaves the device's state exactly as it was.
            assert pickle.dumps(before.state) == before_state
            if outcome.record is not None:
                assert outcome.record.state is before.state
        for released in outcome.released:
            assert released.device_id is not None
            assert released.record is not None
            run.records[released.device_id] = released.record
            run.outcomes.append(released)
        if outcome.record is not None:
            run.records[device_id] = outcome.record
        run.outcomes.append(outcome)
    return run


@pytest.mark.parametrize(
    ("name", "odd"),
    [("telemetry_clock_reset.jsonl", 2), ("telemetry_rtc_2000.jsonl", 2)],
)
def test_a_clock_that_went_back_is_dead_lettered_and_scoring_goes_on(name: str, odd: int) -> None:
    run = feed(name)
    refused = run.outcomes[odd]
    assert refused.rejected is not None
    assert refused.rejected.reason.startswith("out of order")
    assert refused.predictions == []
    scored = [i for i, o in enumerate(run.outcomes) if o.predictions]
    assert scored == [i for i in range(len(run.outcomes)) if i != odd]


def test_a_reading_from_the_future_is_dead_lettered_and_the_next_normal_one_scored() -> None:
    run = feed("telemetry_future_then_normal.jsonl")
    assert [o.rejected is not None for o in run.outcomes] == [False, True, False]
    assert run.reasons[0].startswith("from the future")
    assert len(run.predictions) == 2


def test_a_two_year_jump_never_puts_inf_or_null_anywhere() -> None:
    run = feed("telemetry_two_year_jump.jsonl")
    assert [o.rejected is not None for o in run.outcomes] == [False, True, False, True]
    for prediction in run.predictions:
        Prediction.model_validate_json(prediction.model_dump_json())
    for example in run.examples:
        TrainingExample.model_validate_json(example.model_dump_json())
    record = run.records["pump-10"]
    assert record.state is not None
    assert all(math.isfinite(v) for v in record.state.pend_vec)


@pytest.mark.parametrize(
    "name", ["events_failure_logged_later.jsonl", "events_failure_at_last_reading.jsonl"]
)
def test_a_failure_after_the_last_reading_labels_the_buffer_once_the_partition_moves_on(
    name: str,
) -> None:
    held = feed(name)
    assert held.outcomes[-1].deferred  # held until the partition moves past its time
    run = feed(name, fleet_moves_on=True)
    failure = run.outcomes[-2]  # released by the next reading of the partition
    assert len(failure.failures) == 1  # counted
    positives = [e for e in failure.examples if e.label]
    assert len(positives) == 4
    record = run.records["ZA1FAIL7"]
    assert record.state is not None
    assert record.state.alert_id is None
    assert record.state.pending == 0
    assert all(a.action == "clear" for a in failure.alerts)


def test_late_and_timely_failures_give_the_same_examples() -> None:
    late = feed("events_failure_logged_later.jsonl", fleet_moves_on=True).examples
    timely = feed("events_failure_at_last_reading.jsonl", fleet_moves_on=True).examples
    assert [(e.ts, e.label, e.features) for e in late] == [
        (e.ts, e.label, e.features) for e in timely
    ]


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("consumed_after_repartition.jsonl", "partition_change"),
        ("consumed_after_topic_recreate.jsonl", "offset_reset"),
    ],
)
def test_moved_or_reset_offsets_are_never_a_silent_skip(name: str, flag: str) -> None:
    run = feed(name)
    assert len(run.predictions) == len(run.outcomes) == 8
    assert not any(o.duplicate for o in run.outcomes)
    assert [getattr(o, flag) for o in run.outcomes] == [False] * 3 + [True] + [False] * 4


def test_a_replay_after_a_reset_is_still_recognised() -> None:
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    record = None
    rows = messages("consumed_after_topic_recreate.jsonl")
    for topic, partition, offset, value in rows:
        outcome = processor.handle(Source(topic, partition, offset), b"ZA1PART8", value, record)
        record = outcome.record or record
    topic, partition, offset, value = rows[-2]
    replay = processor.handle(Source(topic, partition, offset), b"ZA1PART8", value, record)
    assert replay.duplicate


def test_metric_name_churn_keeps_the_state_bounded() -> None:
    run = feed("telemetry_metric_name_churn.jsonl.gz")
    assert len(run.outcomes) == 40
    assert all(o.predictions or o.rejected for o in run.outcomes)
    record = run.records["node-17"]
    assert record.state is not None
    assert len(record.state.metrics) <= MAX_DEVICE_METRICS
    assert len(pickle.dumps(record)) <= MAX_STATE_BYTES
    for example in run.examples:
        TrainingExample.model_validate_json(example.model_dump_json())


def test_windows_ids_are_accepted_unless_line_protocol_cannot_carry_them() -> None:
    run = feed("telemetry_windows_ids.jsonl")
    accepted = [p.device_id for p in run.predictions]
    assert accepted == ["\\\\.\\PHYSICALDRIVE0", "ZA1,B2=C3 D"]
    assert len(run.reasons) == 2
    assert all("device_id" in r or "device_type" in r for r in run.reasons)


@pytest.mark.parametrize(
    ("name", "refused"),
    [
        ("telemetry_clock_reset.jsonl", 1),
        ("telemetry_future_then_normal.jsonl", 1),
        ("telemetry_two_year_jump.jsonl", 2),
    ],
)
def test_the_backtest_applies_the_same_time_policy(name: str, refused: int) -> None:
    events = [Telemetry.model_validate_json(value) for _, _, _, value in messages(name)]
    result = run_backtest(events, engine_config_for("backblaze"))
    assert result.refused == refused
    assert result.readings == len(events) - refused
    assert result.refused == sum(o.rejected is not None for o in feed(name).outcomes)
