"""Backblaze reader: ordering contract, labels kept out of metrics, errors with row numbers."""

from __future__ import annotations

import gzip
import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.datasets import Dataset, Event, open_dataset
from pipeline.errors import DatasetError
from schemas import FailureEvent, Telemetry

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL = DATA / "backblaze" / "backblaze-2013-04-10_2013-05-19.csv.gz"
HEADER = (
    "date,serial_number,model,capacity_bytes,failure,"
    "smart_1_raw,smart_5_raw,smart_9_raw,smart_194_raw,smart_197_raw"
)


def write(path: Path, *rows: str, header: str = HEADER) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def read(path: Path) -> list[Event]:
    return list(open_dataset("backblaze", path).events())


def day(d: int) -> datetime:
    return datetime(2013, 4, d, tzinfo=UTC)


def describe(events: list[Event]) -> list[tuple[str, str, int]]:
    return [(type(e).__name__, e.device_id, e.ts.day) for e in events]


def test_failure_follows_the_rest_of_its_day(tmp_path: Path) -> None:
    path = write(
        tmp_path / "b.csv",
        "2013-04-10,A,M1,100,1,1,0,5,30,0",
        "2013-04-10,B,M1,100,0,1,0,5,30,0",
        "2013-04-10,C,M2,200,1,1,0,5,30,0",
        "2013-04-10,D,M2,200,0,1,0,5,30,0",
        "2013-04-11,B,M1,100,0,1,0,6,30,0",
        "2013-04-11,D,M2,200,1,1,0,6,30,0",
    )
    assert describe(read(path)) == [
        ("Telemetry", "A", 10),
        ("Telemetry", "B", 10),
        ("Telemetry", "C", 10),
        ("Telemetry", "D", 10),
        ("FailureEvent", "A", 10),
        ("FailureEvent", "C", 10),
        ("Telemetry", "B", 11),
        ("Telemetry", "D", 11),
        ("FailureEvent", "D", 11),
    ]


def test_row_becomes_a_reading(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "2013-04-10,SER1,ST3000DM001,3000592982016,1,7,0,4031,26,")
    reading, failed = read(path)
    assert reading == Telemetry(
        device_id="SER1",
        ts=day(10),
        device_type="ST3000DM001",
        metrics={
            "capacity_bytes": 3000592982016.0,
            "smart_1_raw": 7.0,
            "smart_5_raw": 0.0,
            "smart_9_raw": 4031.0,
            "smart_194_raw": 26.0,
        },
    )
    assert failed == FailureEvent(device_id="SER1", ts=day(10), device_type="ST3000DM001")


def test_empty_cells_are_absent_not_zero(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "2013-04-10,A,M,,0,,,,,", "2013-04-10,B,M,1,0,,2,,,")
    a, b = read(path)
    assert isinstance(a, Telemetry)
    assert isinstance(b, Telemetry)
    assert a.metrics == {}
    assert b.metrics == {"capacity_bytes": 1.0, "smart_5_raw": 2.0}


def test_extra_columns_are_ignored_and_any_smart_column_is_a_metric(tmp_path: Path) -> None:
    header = "date,serial_number,model,capacity_bytes,failure,datacenter,smart_5_normalized"
    path = write(tmp_path / "b.csv", "2013-04-10,A,M,1,0,ams,100", header=header)
    (reading,) = read(path)
    assert isinstance(reading, Telemetry)
    assert reading.metrics == {"capacity_bytes": 1.0, "smart_5_normalized": 100.0}


def test_gz_and_plain_csv_read_the_same(tmp_path: Path) -> None:
    rows = ["2013-04-10,A,M,1,0,1,2,3,4,5", "2013-04-11,A,M,1,1,1,2,3,4,"]
    plain = read(write(tmp_path / "b.csv", *rows))
    assert read(write(tmp_path / "b.csv.gz", *rows)) == plain
    assert len(plain) == 3


def test_name_and_time_unit(tmp_path: Path) -> None:
    dataset = open_dataset("backblaze", write(tmp_path / "drives-2013.csv.gz"))
    assert (dataset.name, dataset.format) == ("drives-2013", "backblaze")
    assert (dataset.time_unit, dataset.time_unit_seconds) == ("days", 86400.0)
    assert dict(dataset.ground_truth_failures) == {}


def test_events_reread_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "2013-04-10,A,M,1,0,1,2,3,4,5")
    dataset = open_dataset("backblaze", path)
    assert len(list(dataset.events())) == 1
    write(path, "2013-04-10,A,M,1,0,1,2,3,4,5", "2013-04-11,A,M,1,0,1,2,3,4,5")
    assert len(list(dataset.events())) == 2


def test_directory_reads_daily_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "2013-04-11.csv.gz", "2013-04-11,A,M,1,1,1,2,3,4,5")
    write(tmp_path / "2013-04-10.csv", "2013-04-10,A,M,1,0,1,2,3,4,5", "2013-04-10,B,M,1,1,,,,,")
    (tmp_path / "notes.txt").write_text("not data")
    dataset = open_dataset("backblaze", tmp_path)
    assert dataset.name == tmp_path.name
    assert describe(list(dataset.events())) == [
        ("Telemetry", "A", 10),
        ("Telemetry", "B", 10),
        ("FailureEvent", "B", 10),
        ("Telemetry", "A", 11),
        ("FailureEvent", "A", 11),
    ]


def test_directory_without_data_or_with_twins(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no \*\.csv or \*\.csv\.gz files"):
        open_dataset("backblaze", tmp_path)
    write(tmp_path / "2013-04-10.csv")
    write(tmp_path / "2013-04-10.csv.gz")
    with pytest.raises(DatasetError, match=r"both \.csv and \.csv\.gz for 2013-04-10$"):
        open_dataset("backblaze", tmp_path)


def test_a_date_going_backwards_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "b.csv",
        "2013-04-10,A,M,1,0,1,2,3,4,5",
        "2013-04-11,A,M,1,0,1,2,3,4,5",
        "2013-04-10,B,M,1,0,1,2,3,4,5",
    )
    with pytest.raises(
        DatasetError, match=r"b\.csv row 4: date 2013-04-10 comes after 2013-04-11; .*date order"
    ):
        read(path)


def test_a_directory_going_backwards_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "2013-04-11,A,M,1,0,1,2,3,4,5")
    write(tmp_path / "b.csv", "2013-04-10,A,M,1,0,1,2,3,4,5")
    with pytest.raises(DatasetError, match=r"b\.csv row 2: date 2013-04-10 comes after"):
        read(tmp_path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("2013-04-10,A,M,1,0,x,2,3,4,5", "smart_1_raw='x' is not a number"),
        ("2013-04-10,A,M,1,0,1,2,3,4,nan", "smart_197_raw='nan' is not a number"),
        ("2013-04-10,A,M,inf,0,1,2,3,4,5", "capacity_bytes='inf' is not a number"),
        ("2013-04-10,A,M,1,0,1,-Infinity,3,4,5", "smart_5_raw='-Infinity' is not a number"),
        ("2013-04-10,A,M,1,2,1,2,3,4,5", "failure='2' is not 0 or 1"),
        ("2013-04-10,A,M,1,,1,2,3,4,5", "failure='' is not 0 or 1"),
        ("10/04/2013,A,M,1,0,1,2,3,4,5", r"date='10/04/2013' is not a date \(YYYY-MM-DD\)"),
        ("2013-04-10,,M,1,0,1,2,3,4,5", "serial_number='' is not a valid device id"),
        ("2013-04-10,A,,1,0,1,2,3,4,5", "model='' is not a valid device type"),
        ("2013-04-10,A,M,1,0,1,2,3,4", "expected 10 fields, found 9"),
    ],
)
def test_malformed_rows_name_file_row_and_cell(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path / "b.csv", "2013-04-10,OK,M,1,0,1,2,3,4,5", "", row)
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))} row 4: {message}"):
        read(path)


def test_wrong_header_names_the_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", header="date,serial,model,capacity_bytes,smart_1_raw")
    with pytest.raises(DatasetError, match=r"b\.csv: missing columns: serial_number, failure$"):
        open_dataset("backblaze", path)


def test_empty_and_damaged_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetError, match="empty file"):
        open_dataset("backblaze", empty)
    damaged = tmp_path / "damaged.csv.gz"
    damaged.write_bytes(b"this is not gzip")
    with pytest.raises(DatasetError, match=r"damaged\.csv\.gz: cannot read: "):
        open_dataset("backblaze", damaged)
    truncated = tmp_path / "truncated.csv.gz"
    rows = [f"2013-04-10,S{i},M,{i * 7919 % 10007},0,{i},{i % 13},3,4,5" for i in range(20_000)]
    blob = gzip.compress("\n".join([HEADER, *rows]).encode())
    truncated.write_bytes(blob[: len(blob) // 2])
    dataset = open_dataset("backblaze", truncated)
    with pytest.raises(DatasetError, match=r"truncated\.csv\.gz: cannot read: "):
        list(dataset.events())


def test_a_file_removed_after_open_is_a_dataset_error(tmp_path: Path) -> None:
    path = write(tmp_path / "b.csv", "2013-04-10,A,M,1,0,1,2,3,4,5")
    dataset = open_dataset("backblaze", path)
    path.unlink()
    with pytest.raises(DatasetError, match=r"^no such file: "):
        list(dataset.events())


# --- the real file ---------------------------------------------------------------------


@dataclass
class Summary:
    telemetry: int = 0
    failures: int = 0
    devices: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    last_reading: dict[str, datetime] = field(default_factory=dict)
    failure_ts: dict[str, datetime] = field(default_factory=dict)
    order_violations: int = 0
    label_in_metrics: int = 0
    readings_after_failure: int = 0
    sampled: list[Event] = field(default_factory=list)


@pytest.fixture(scope="module")
def real() -> tuple[Dataset, Summary]:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder not found: {DATA}")
    dataset = open_dataset("backblaze", REAL)
    summary = Summary()
    previous: tuple[datetime, int] | None = None
    for index, event in enumerate(dataset.events()):
        key = (event.ts, 0 if isinstance(event, Telemetry) else 1)
        if previous is not None and key < previous:
            summary.order_violations += 1
        previous = key
        if index % 997 == 0:
            summary.sampled.append(event)
        if isinstance(event, Telemetry):
            summary.telemetry += 1
            summary.devices.add(event.device_id)
            summary.last_reading[event.device_id] = event.ts
            summary.label_in_metrics += "failure" in event.metrics
            summary.readings_after_failure += event.device_id in summary.failed
        else:
            summary.failures += 1
            summary.failed.add(event.device_id)
            summary.failure_ts[event.device_id] = event.ts
    return dataset, summary


def test_real_file_counts(real: tuple[Dataset, Summary]) -> None:
    dataset, summary = real
    assert dataset.name == "backblaze-2013-04-10_2013-05-19"
    assert summary.telemetry == 868_524
    assert summary.failures == 120
    assert len(summary.devices) == 22_892
    assert len(summary.failed) == 120


def test_real_file_keeps_the_ordering_contract(real: tuple[Dataset, Summary]) -> None:
    _, summary = real
    assert summary.order_violations == 0
    assert summary.readings_after_failure == 0
    for device, ts in summary.failure_ts.items():
        assert summary.last_reading[device] == ts


def test_real_file_keeps_the_label_out_of_metrics(real: tuple[Dataset, Summary]) -> None:
    _, summary = real
    assert summary.label_in_metrics == 0


def test_real_file_events_pass_full_validation(real: tuple[Dataset, Summary]) -> None:
    _, summary = real
    assert len(summary.sampled) > 800
    for event in summary.sampled:
        assert type(event).model_validate_json(event.model_dump_json()) == event


def test_real_slice_reads_the_same_gzipped_or_plain(tmp_path: Path) -> None:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder not found: {DATA}")
    with gzip.open(REAL, "rt", newline="") as handle:
        lines = list(itertools.islice(handle, 50_001))  # header and about two days
    plain = tmp_path / "slice.csv"
    plain.write_text("".join(lines))
    zipped = tmp_path / "slice.csv.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    events = read(plain)
    assert events == read(zipped)
    assert Counter(type(e).__name__ for e in events)["Telemetry"] == 50_000


REAL_2018 = DATA / "backblaze" / "backblaze-st4000dm000-2018-01-01_2018-02-14.csv.gz"


def test_capacity_is_optional_and_every_smart_value_is_a_metric(tmp_path: Path) -> None:
    header = "date,serial_number,model,failure,smart_5_raw,smart_187_raw,smart_241_raw"
    path = write(tmp_path / "b.csv", "2018-01-01,A,ST4000DM000,0,0,2,123456789", header=header)
    (reading,) = read(path)
    assert isinstance(reading, Telemetry)
    assert reading.metrics == {
        "smart_5_raw": 0.0,
        "smart_187_raw": 2.0,
        "smart_241_raw": 123456789.0,
    }


def test_2023_format_text_columns_are_ignored(tmp_path: Path) -> None:
    header = (
        "date,serial_number,model,capacity_bytes,failure,datacenter,cluster_id,vault_id,"
        "pod_id,pod_slot_num,is_legacy_format,smart_1_normalized,smart_1_raw,smart_5_raw"
    )
    row = "2023-04-01,ZA1,ST8000NM0055,8001563222016,0,phx1,0,1030,9,24,0,83,200000,0"
    (reading,) = read(write(tmp_path / "b.csv", row, header=header))
    assert isinstance(reading, Telemetry)
    assert set(reading.metrics) == {
        "capacity_bytes",
        "smart_1_normalized",
        "smart_1_raw",
        "smart_5_raw",
    }


@pytest.mark.skipif(not REAL_2018.exists(), reason="shared data not present")
def test_the_2018_extract_reads_with_no_option() -> None:
    dataset = open_dataset("backblaze", REAL_2018)
    first = [e for e in itertools.islice(dataset.events(), 2000) if isinstance(e, Telemetry)]
    assert len(first) == 2000
    metrics = set().union(*(event.metrics for event in first))
    assert {"smart_187_raw", "smart_198_raw", "smart_241_raw", "smart_242_raw"} <= metrics
    assert "capacity_bytes" not in metrics
