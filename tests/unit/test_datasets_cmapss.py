"""C-MAPSS reader: one cycle per day, training failures as events, test failures as truth."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.datasets import Event, open_dataset
from pipeline.errors import DatasetError
from schemas import FailureEvent, Telemetry

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def line(unit: int, cycle: int, value: str = "1.5") -> str:
    return " ".join([str(unit), str(cycle), *[value] * 24]) + "  "


def cycle(n: int) -> datetime:
    return EPOCH + timedelta(days=n)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    (tmp_path / "train_FD001.txt").write_text(
        "\n".join([line(1, 1), line(1, 2), line(1, 3), line(2, 1), line(2, 2)]) + "\n"
    )
    (tmp_path / "test_FD001.txt").write_text("\n".join([line(1, 1), line(2, 1), line(2, 2)]))
    (tmp_path / "RUL_FD001.txt").write_text("5\n0\n")
    return tmp_path


def describe(events: list[Event]) -> list[tuple[str, str, int]]:
    return [(type(e).__name__, e.device_id, (e.ts - EPOCH).days) for e in events]


def test_directory_streams_train_then_test_in_time_order(small: Path) -> None:
    dataset = open_dataset("cmapss", small)
    assert (dataset.name, dataset.format, dataset.time_unit) == ("cmapss-FD001", "cmapss", "cycles")
    assert dataset.time_unit_seconds == 86400.0
    assert describe(list(dataset.events())) == [
        ("Telemetry", "train-1", 1),
        ("Telemetry", "train-2", 1),
        ("Telemetry", "train-1", 2),
        ("Telemetry", "train-2", 2),
        ("FailureEvent", "train-2", 2),
        ("Telemetry", "train-1", 3),
        ("FailureEvent", "train-1", 3),
        ("Telemetry", "test-1", 4),
        ("Telemetry", "test-2", 4),
        ("Telemetry", "test-2", 5),
    ]
    # Last test cycle plus the true remaining life, on the same shifted timeline.
    assert dict(dataset.ground_truth_failures) == {"test-1": cycle(4 + 5), "test-2": cycle(5)}


def test_a_reading_carries_every_setting_and_sensor(small: Path) -> None:
    first = next(open_dataset("cmapss", small).events())
    assert first == Telemetry(
        device_id="train-1",
        ts=cycle(1),
        device_type="FD001",
        metrics={
            **{f"setting_{n}": 1.5 for n in range(1, 4)},
            **{f"sensor_{n}": 1.5 for n in range(1, 22)},
        },
    )


def test_split_option_and_single_files(small: Path) -> None:
    train = open_dataset("cmapss", small, split="train")
    assert train.name == "cmapss-FD001-train"
    assert dict(train.ground_truth_failures) == {}
    assert [type(e) for e in train.events()].count(FailureEvent) == 2
    test = open_dataset("cmapss", small, split="test")
    assert test.name == "cmapss-FD001-test"
    assert describe(list(test.events()))[0] == ("Telemetry", "test-1", 1)
    assert dict(test.ground_truth_failures) == {"test-1": cycle(6), "test-2": cycle(2)}
    single = open_dataset("cmapss", small / "test_FD001.txt")
    assert list(single.events()) == list(test.events())
    assert single.ground_truth_failures == test.ground_truth_failures
    assert list(open_dataset("cmapss", small / "train_FD001.txt").events()) == list(train.events())


def test_other_subsets_by_option(small: Path) -> None:
    for name in ("train", "test", "RUL"):
        (small / f"{name}_FD001.txt").rename(small / f"{name}_FD003.txt")
    dataset = open_dataset("cmapss", small, subset="FD003")
    assert {e.device_type for e in dataset.events()} == {"FD003"}
    with pytest.raises(DatasetError, match=r"^no such file: .*train_FD001\.txt$"):
        open_dataset("cmapss", small)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"subset": "fd1"}, r"subset='fd1' is not FD001, FD002, \.\.\."),
        ({"split": "validation"}, r"split='validation' is not one of both, train, test"),
        ({"horizon": 3}, r"unknown cmapss options: horizon \(valid -o keys: split, subset\)"),
    ],
)
def test_bad_options(small: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        open_dataset("cmapss", small, **options)


def test_single_file_names_and_contradicting_options(small: Path) -> None:
    odd = small / "engines.txt"
    odd.write_text(line(1, 1))
    with pytest.raises(DatasetError, match=r"must be named train_FDxxx\.txt or test_FDxxx\.txt"):
        open_dataset("cmapss", odd)
    with pytest.raises(DatasetError, match="contradict the file name"):
        open_dataset("cmapss", small / "train_FD001.txt", split="test")


def test_missing_rul_file(small: Path) -> None:
    (small / "RUL_FD001.txt").unlink()
    with pytest.raises(DatasetError, match=r"^no such file: .*RUL_FD001\.txt$"):
        open_dataset("cmapss", small)
    assert open_dataset("cmapss", small, split="train").name == "cmapss-FD001-train"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (line(1, 3, "abc"), r"setting_1='abc' is not a number"),
        (line(1, 3, "NaN"), r"setting_1='NaN' is not a number"),
        (line(1, 3).replace(" 1.5  ", " inf  "), r"sensor_21='inf' is not a number"),
        (line(1, 2), r"unit 1 cycle 2 does not follow cycle 2"),
        (line(0, 3), r"unit='0' is not a whole number in 1\.\.1000000"),
        (line(1, 10**7), r"cycle='10000000' is not a whole number in 1\.\.1000000"),
        ("1 3 1.5", r"expected 26 values, found 3"),
    ],
)
def test_malformed_rows_name_file_row_and_column(small: Path, bad: str, message: str) -> None:
    path = small / "train_FD001.txt"
    path.write_text("\n".join([line(1, 1), line(1, 2), bad]) + "\n")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(path))} row 3: {message}$"):
        list(open_dataset("cmapss", small, split="train").events())


def test_rul_file_must_match_the_test_units(small: Path) -> None:
    (small / "RUL_FD001.txt").write_text("5\n")
    with pytest.raises(DatasetError, match=r"RUL_FD001\.txt: 1 RUL values, but .* \(2 units\)$"):
        open_dataset("cmapss", small)
    (small / "RUL_FD001.txt").write_text("5\n-1\n")
    with pytest.raises(DatasetError, match=r"RUL_FD001\.txt row 2: rul='-1' is not a whole"):
        open_dataset("cmapss", small)


# --- the real files --------------------------------------------------------------------


def test_real_fd001_counts_and_order() -> None:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder not found: {DATA}")
    dataset = open_dataset("cmapss", DATA / "cmapss")
    events = list(dataset.events())
    kinds = Counter((type(e).__name__, e.device_id.split("-")[0]) for e in events)
    assert kinds == {
        ("Telemetry", "train"): 20_631,
        ("FailureEvent", "train"): 100,
        ("Telemetry", "test"): 13_096,
    }
    keys = [(e.ts, isinstance(e, FailureEvent)) for e in events]
    assert keys == sorted(keys)
    last_train = max(e.ts for e in events if e.device_id.startswith("train-"))
    assert min(e.ts for e in events if e.device_id.startswith("test-")) > last_train
    truth = dataset.ground_truth_failures
    assert len(truth) == 100
    last_test = {e.device_id: e.ts for e in events if e.device_id.startswith("test-")}
    assert all(truth[device] >= ts for device, ts in last_test.items())
    # test-1's last row is cycle 31 and its true RUL is 112 (RUL_FD001.txt line 1).
    assert truth["test-1"] - last_test["test-1"] == timedelta(days=112)
    for event in events[::500]:
        assert type(event).model_validate_json(event.model_dump_json()) == event
