"""The ``reading`` point: each accepted reading's raw metrics, beside its prediction."""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline import topics
from pipeline.cli.engine_options import engine_config_for
from pipeline.engine.lane import Lane
from pipeline.settings import Settings
from pipeline.streaming.lineprotocol import reading_line, tag
from pipeline.streaming.processor import Processor, Source
from schemas import FailureEvent, Telemetry

T0 = datetime(2013, 4, 10, 0, 0, 0, 123456, tzinfo=UTC)


def telemetry(metrics: dict[str, float], device_id: str = "Z 1") -> Telemetry:
    return Telemetry(device_id=device_id, ts=T0, device_type="ST3000", metrics=metrics)


def test_reading_line_holds_every_metric_as_sent_at_the_reading_time() -> None:
    rendered = reading_line(telemetry({"smart_5_raw": 8.0, "smart_194_raw": 31.5}))
    assert rendered == (
        r"reading,device_id=Z\ 1,device_type=ST3000 smart_5_raw=8.0,smart_194_raw=31.5"
        " 1365552000123456000"
    )


def test_metric_names_use_the_tag_escaping() -> None:
    rendered = reading_line(telemetry({"a b,c=d": 1.0, "plain": 2.0}))
    assert rendered is not None
    assert f"{tag('a b,c=d')}=1.0,plain=2.0 " in rendered


def test_a_name_influxdb_refuses_is_left_out_and_an_empty_point_is_not_written() -> None:
    # InfluxDB answers 422 to a field named "time"; the rest of the reading is stored.
    assert reading_line(telemetry({"time": 5.0, "smart_9_raw": 100.0})) == (
        r"reading,device_id=Z\ 1,device_type=ST3000 smart_9_raw=100.0 1365552000123456000"
    )
    assert reading_line(telemetry({"time": 5.0})) is None
    # The escaping cannot write a trailing backslash (tag() refuses it): left out too.
    assert reading_line(telemetry({"end\\": 1.0, "b": 2.0})) == (
        r"reading,device_id=Z\ 1,device_type=ST3000 b=2.0 1365552000123456000"
    )
    assert reading_line(telemetry({})) is None


def test_the_outcome_of_a_reading_writes_its_raw_metrics_unless_turned_off() -> None:
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    value = telemetry({"smart_5_raw": 8.0}, device_id="d1").model_dump_json().encode()
    outcome = processor.handle(Source(topics.TELEMETRY, 0, 0), b"d1", value, None)
    lines = outcome.lines()
    assert [line.split(",", 1)[0] for line in lines] == ["reading", "prediction"]
    assert lines[0].endswith(" smart_5_raw=8.0 1365552000123456000")
    assert lines[1].endswith(" 1365552000123456000")  # same flush, same timestamp
    assert [line.split(",", 1)[0] for line in outcome.lines(readings=False)] == ["prediction"]


def test_failures_write_no_reading_point() -> None:
    processor = Processor(Lane(engine_config_for("backblaze"), 0))
    value = FailureEvent(device_id="d1", ts=T0).model_dump_json().encode()
    outcome = processor.handle(Source(topics.FAILURES, 0, 0), b"d1", value, None)
    assert outcome.reading is None
    assert not any(line.startswith("reading") for line in outcome.lines())


def test_reading_points_are_on_by_default() -> None:
    assert Settings.model_fields["sink_readings"].default is True
