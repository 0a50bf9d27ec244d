"""Generic CSV reader: column options, time formats, sorting, and a round-trip property."""

from __future__ import annotations

import csv
import gzip
import re
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.datasets import Event, open_dataset
from pipeline.datasets._rows import parse_time
from pipeline.errors import DatasetError
from schemas import FailureEvent, Telemetry

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def read(path: Path, **options: object) -> list[Event]:
    options = {"device_column": "device", "time_column": "time", **options}
    return list(open_dataset("csv", path, **options).events())


@pytest.fixture
def pumps(tmp_path: Path) -> Path:
    return write(
        tmp_path / "pumps.csv",
        """
device,time,pressure,site,failed,flow
p2,2024-03-01T00:00:02Z,1.5,north,0,
p1,2024-03-01T00:00:01Z,2.5,south,yes,7
p1,2024-03-01T00:00:02Z,3.5,south,false,8
p3,2024-03-01T00:00:02Z,4.5,north,TRUE,9
""",
    )


def test_rows_sorted_by_time_with_failures_after_their_readings(pumps: Path) -> None:
    events = read(pumps, failure_column="failed")
    assert [(type(e).__name__, e.device_id, e.ts.second) for e in events] == [
        ("Telemetry", "p1", 1),
        ("FailureEvent", "p1", 1),
        ("Telemetry", "p2", 2),
        ("Telemetry", "p1", 2),
        ("Telemetry", "p3", 2),
        ("FailureEvent", "p3", 2),
    ]


def test_numeric_columns_become_metrics_and_text_columns_are_dropped(pumps: Path) -> None:
    first = read(pumps, failure_column="failed")[0]
    assert first == Telemetry(
        device_id="p1",
        ts=T0 + timedelta(seconds=1),
        device_type="default",
        metrics={"pressure": 2.5, "flow": 7.0},
    )


def test_a_failure_flag_column_is_only_a_label(pumps: Path) -> None:
    # Without failure_column, "failed" holds text ("yes", "false"): it is not a metric either.
    events = read(pumps)
    assert all(isinstance(e, Telemetry) and set(e.metrics) <= {"pressure", "flow"} for e in events)


def test_listed_metrics_tags_and_device_type_column(pumps: Path) -> None:
    events = read(pumps, metric_columns=["flow"], tag_columns="site")
    assert isinstance(events[0], Telemetry)
    assert events[0].metrics == {"flow": 7.0}
    assert events[0].tags == {"site": "south"}
    assert isinstance(events[1], Telemetry)
    assert events[1].metrics == {}  # p2's flow cell is empty: absent, not 0
    assert [e.device_type for e in read(pumps, device_type_column="site")][:2] == ["south", "north"]
    assert {e.device_type for e in read(pumps, device_type="pump")} == {"pump"}


def test_failure_events_carry_the_device_type(pumps: Path) -> None:
    events = read(pumps, failure_column="failed", device_type="pump")
    assert events[1] == FailureEvent(
        device_id="p1", ts=T0 + timedelta(seconds=1), device_type="pump"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T00:00:00Z", T0),
        ("2024-03-01T00:00:00+00:00", T0),
        ("2024-03-01T02:00:00+02:00", T0),
        ("2024-03-01T00:00:00", T0),
        ("2024-03-01 00:00:00", T0),
        ("2024-03-01", T0),
        ("1709251200", T0),
        ("1709251200.25", T0 + timedelta(microseconds=250_000)),
        ("1.7092512e9", T0),
        (" 2024-03-01T00:00:00.5 ", T0 + timedelta(microseconds=500_000)),
    ],
)
def test_time_formats(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01", "nan", "inf", "1e400", "1e20"])
def test_bad_times(text: str) -> None:
    assert parse_time(text) is None


def test_time_units(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", "device,time,x\na,1,2")
    assert open_dataset("csv", path, device_column="device", time_column="time").time_unit == (
        "seconds"
    )
    days = open_dataset("csv", path, device_column="device", time_column="time", time_unit="days")
    assert (days.time_unit, days.time_unit_seconds) == ("days", 86400.0)
    shifts = open_dataset(
        "csv",
        path,
        device_column="device",
        time_column="time",
        time_unit="shifts",
        time_unit_seconds="28800",
    )
    assert (shifts.name, shifts.time_unit, shifts.time_unit_seconds) == ("f", "shifts", 28800.0)


def test_delimiters_and_gzip(tmp_path: Path) -> None:
    write(tmp_path / "semi.csv", "device;time;x\na;5;2,5e0")
    (tmp_path / "tab.tsv.gz").write_bytes(gzip.compress(b"device\ttime\tx\na\t5\t2.5\n"))
    semi = read(tmp_path / "semi.csv", delimiter=";", metric_columns=[])
    assert semi[0].ts == datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC)
    tab = read(tmp_path / "tab.tsv.gz", delimiter="tab")
    assert isinstance(tab[0], Telemetry)
    assert tab[0].metrics == {"x": 2.5}
    assert (
        open_dataset(
            "csv",
            tmp_path / "tab.tsv.gz",
            device_column="device",
            time_column="time",
            delimiter="\\t",
        ).name
        == "tab"
    )


def test_a_bom_from_a_spreadsheet_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffdevice,time,x\r\na,5,1\r\n".encode())
    assert len(read(path)) == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device_column": None}, r"^csv needs the device: --device-column COLUMN, or --device"),
        ({"device": "p1"}, r"^csv: give --device-column or --device, not both$"),
        ({"time_column": None}, r"^csv needs --time-column COLUMN"),
        ({"device_column": 3}, r"^--device-column 3 is not a non-empty string$"),
        ({"metric_columns": [1]}, r"--metric-columns \[1\] is not a list of column names"),
        ({"time_column": "stamp"}, r"^--time-column 'stamp': no such column in f\.csv \("),
        ({"failures": "nope.csv"}, r"^--failures nope\.csv: no such file$"),
        ({"time_shift": "1x"}, r"unknown unit 'x' \(accepted: s, m/min, h/hour"),
        ({"metric_columns": ["x", "x"]}, r"is not a list of distinct column names"),
        ({"metric_columns": ["x", "device"]}, r"use columns more than once: device$"),
        ({"device_type": "a", "device_type_column": "x"}, r"exclude each other"),
        ({"device_type": "bad\n"}, r"device_type='bad\\n' is not a valid device type"),
        ({"time_unit": "shifts"}, r"needs time_unit_seconds \(known units: seconds, minutes"),
        ({"time_unit": "days", "time_unit_seconds": 60}, r"disagree"),
        ({"time_unit_seconds": -1}, r"time_unit_seconds=-1 is not a positive number"),
        ({"time_unit_seconds": "nan"}, r"time_unit_seconds='nan' is not a positive number"),
        ({"delimiter": ";;"}, r"delimiter=';;' is not one character"),
        ({"metric_columns": ["x", "y", "z"]}, r"--metric-columns 'y': no such column in f\.csv"),
        ({"colour": "red"}, r"^unknown csv options: colour \(valid -o keys: delimiter, device,"),
    ],
)
def test_bad_options(tmp_path: Path, options: dict[str, object], message: str) -> None:
    path = write(tmp_path / "f.csv", "device,time,x\na,1,2")
    options = {"device_column": "device", "time_column": "time", **options}
    options = {key: value for key, value in options.items() if value is not None}
    with pytest.raises(DatasetError, match=message):
        open_dataset("csv", path, **options)


@pytest.mark.parametrize(
    ("row", "options", "message"),
    [
        ("a,5,x,0", {"metric_columns": "x"}, "x='x' is not a number"),
        ("a,5,nan,0", {}, "x='nan' is not a number"),
        ("a,5,-inf,0", {}, "x='-inf' is not a number"),
        ("a,soon,1,0", {}, "time='soon' is not an ISO 8601 time or epoch seconds"),
        (",5,1,0", {}, "device='' is not a valid device id"),
        ("a,5,1,maybe", {"failure_column": "f"}, r"f='maybe' is not a failure flag"),
        ("a,5,1", {}, "expected 4 fields, found 3"),
        ("a,5,1,0", {"device_type_column": "f", "metric_columns": []}, ""),
    ],
)
def test_malformed_rows_name_file_row_and_cell(
    tmp_path: Path, row: str, options: dict[str, object], message: str
) -> None:
    path = write(tmp_path / "f.csv", f"device,time,x,f\nok,1,1,0\n{row}\nok,9,1,0")
    if not message:  # a valid row: the device type column holds "0", a valid type
        assert {e.device_type for e in read(path, **options)} == {"0"}
        return
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))} row 3: {message}"):
        read(path, **options)


def test_row_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", "device,time,x\na,1,1\n\n\na,2,oops")
    with pytest.raises(DatasetError, match=r"f\.csv row 5: x='oops' is not a number"):
        read(path, metric_columns=["x"])


def test_a_tag_too_long(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", f"device,time,note\na,1,{'n' * 300}")
    with pytest.raises(DatasetError, match=r"row 2: note='n+' is not a valid tag"):
        read(path, tag_columns=["note"])


# --- property: what is written is what is read ----------------------------------------

ids = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12)
names = st.lists(
    st.text(alphabet="abcdefghij_", min_size=1, max_size=6).filter(
        lambda name: name not in {"device", "time", "kind"}
    ),
    min_size=1,
    max_size=4,
    unique=True,
)
times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
values = st.none() | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def tables(
    draw: st.DrawFn,
) -> tuple[list[str], list[tuple[str, datetime, str, bool, list[float | None]]]]:
    metric_names = draw(names)
    rows = draw(
        st.lists(
            st.tuples(
                ids,
                times,
                st.sampled_from(["iso", "offset", "naive", "epoch"]),
                st.booleans(),
                st.lists(values, min_size=len(metric_names), max_size=len(metric_names)),
            ),
            max_size=25,
        )
    )
    return metric_names, rows


def _time_text(ts: datetime, style: str) -> str:
    if style == "iso":
        return ts.isoformat()
    if style == "offset":
        return ts.astimezone(timezone(timedelta(hours=-5, minutes=-30))).isoformat()
    if style == "naive":
        return ts.replace(tzinfo=None).isoformat(sep=" ")
    return str(int(ts.timestamp())) if ts.microsecond == 0 else ts.isoformat()


@settings(derandomize=True, deadline=None, max_examples=150)
@given(tables(), st.booleans())
def test_generic_csv_round_trips_random_rows(
    table: tuple[list[str], list[tuple[str, datetime, str, bool, list[float | None]]]],
    list_metrics: bool,
) -> None:
    metric_names, rows = table
    expected: list[tuple[datetime, int, Event]] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["device", "time", "kind", *metric_names])
            for device, ts, style, failed, cells in rows:
                writer.writerow(
                    [
                        device,
                        _time_text(ts, style),
                        "1" if failed else "0",
                        *("" if cell is None else repr(cell) for cell in cells),
                    ]
                )
                metrics = {
                    name: cell
                    for name, cell in zip(metric_names, cells, strict=True)
                    if cell is not None
                }
                expected.append(
                    (ts, 0, Telemetry(device_id=device, ts=ts, device_type="d", metrics=metrics))
                )
                if failed:
                    expected.append((ts, 1, FailureEvent(device_id=device, ts=ts, device_type="d")))
        options: dict[str, object] = {"failure_column": "kind", "device_type": "d"}
        if list_metrics:
            options["metric_columns"] = metric_names
        got = read(path, **options)
    expected.sort(key=lambda item: (item[0], item[1]))
    assert got == [event for _, _, event in expected]


# --- real files as people have them -------------------------------------------------


def test_single_series_with_a_failures_file_and_maintenance(tmp_path: Path) -> None:
    data = write(
        tmp_path / "pump.csv",
        "timestamp;temperature;anomaly\n"
        "2024-03-01 00:00:00;20.5;0\n"
        "2024-03-01 00:05:00;21.0;0\n"
        "2024-03-01 00:10:00;25.0;1\n"
        "2024-03-01 00:15:00;20.0;0\n",
    )
    failures = write(
        tmp_path / "failures.csv",
        "device,time,kind\npump1,2024-03-01 00:10:00,bearing\npump1,2024-03-01T00:12:00,replaced",
    )
    dataset = open_dataset(
        "csv", data, device="pump1", time_column="timestamp", failures=str(failures)
    )
    assert dataset.warnings == (
        "columns that look like labels are not used as metrics: anomaly "
        "(name them in --metric-columns to use them anyway)",
    )
    events = list(dataset.events())
    kinds = [type(event).__name__ for event in events]
    assert kinds == [
        "Telemetry",
        "Telemetry",
        "Telemetry",
        "FailureEvent",
        "MaintenanceEvent",
        "Telemetry",
    ]
    assert all(event.device_id == "pump1" for event in events)
    assert isinstance(events[0], Telemetry)
    assert events[0].metrics == {"temperature": 20.5}
    assert isinstance(events[3], FailureEvent)
    assert events[3].reason == "bearing"
    assert events[3].device_type == "default"


def test_a_failures_file_of_times_only_for_one_device(tmp_path: Path) -> None:
    data = write(tmp_path / "v.csv", "t,x\n1,1\n2,2\n3,3")
    failures = write(tmp_path / "f.csv", "1970-01-01T00:00:02Z")
    events = list(
        open_dataset("csv", data, device="v1", time_column="t", failures=str(failures)).events()
    )
    assert [type(e).__name__ for e in events] == [
        "Telemetry",
        "Telemetry",
        "FailureEvent",
        "Telemetry",
    ]


def test_flags_written_as_floats_and_columns_by_position(tmp_path: Path) -> None:
    # pandas' to_csv writes an unnamed index column first and floats for 0/1.
    path = write(tmp_path / "p.csv", ",value,failed\n2024-03-01,1.5,0.0\n2024-03-02,2.5,1.0")
    dataset = open_dataset("csv", path, device="m", time_column="1", failure_column="3")
    events = list(dataset.events())
    assert [type(e).__name__ for e in events] == ["Telemetry", "Telemetry", "FailureEvent"]
    assert isinstance(events[0], Telemetry)
    assert events[0].metrics == {"value": 1.5}
    named = open_dataset("csv", path, device="m", time_column="column_1")
    assert len(list(named.events())) == 2


def test_time_shift_and_a_named_label_column_warns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "device,date,x,label\na,2024-03-01,1,0")
    dataset = open_dataset(
        "csv",
        path,
        device_column="device",
        time_column="date",
        time_shift="1d",
        metric_columns="x,label",
    )
    assert dataset.warnings[0].startswith(
        "columns that look like labels are used as metrics: label"
    )
    (event,) = list(dataset.events())
    assert event.ts == datetime(2024, 3, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "label_like"),
    [
        ("anomaly", True),
        ("changepoint", True),
        ("comp1_failure", True),
        ("is_anomaly", True),
        ("Label", True),
        ("temperature", False),
        ("failure_rate_sensor", True),
        ("volt", False),
        ("flabel", False),
    ],
)
def test_label_like_names(name: str, label_like: bool) -> None:
    from pipeline.datasets.generic_csv import looks_like_label

    assert looks_like_label(name) is label_like


def test_a_stray_text_cell_in_a_column_of_numbers_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "pump.csv", "device,time,temperature\np,1,40.5\np,2,hot\np,3,41")
    with pytest.raises(DatasetError, match=r"pump\.csv row 3: temperature='hot' is not a number"):
        read(path)


def test_missing_value_markers_are_no_value(tmp_path: Path) -> None:
    path = write(tmp_path / "pump.csv", "device,time,x,y\np,1,NA,1\np,2,2,null\np,3,N/A,None")
    metrics = [e.metrics for e in read(path) if isinstance(e, Telemetry)]
    assert metrics == [{"y": 1.0}, {"x": 2.0}, {}]
