"""The public surface of ``pipeline.datasets``: dispatch, options, and the fast builders."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline import datasets
from pipeline.datasets import FORMATS, Dataset, Event, open_dataset
from pipeline.datasets._rows import failure, telemetry
from pipeline.errors import DatasetError, ForewarnError
from schemas import FailureEvent, Telemetry

TS = datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_public_surface_is_small() -> None:
    assert datasets.__all__ == ["FORMATS", "OPTION_KEYS", "Dataset", "Event", "open_dataset"]
    assert FORMATS == ("backblaze", "cmapss", "csv")


def test_unknown_format_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError,
        match=r"^unknown dataset format 'parquet'; valid formats: "
        r"backblaze, cmapss, csv$",
    ):
        open_dataset("parquet", tmp_path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_path_is_a_dataset_error(fmt: str, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.csv"
    options = {"device_column": "d", "time_column": "t"} if fmt == "csv" else {}
    with pytest.raises(DatasetError, match=r"^no such file: .*nothing\.csv$"):
        open_dataset(fmt, missing, **options)


def test_dataset_error_is_a_forewarn_error() -> None:
    assert issubclass(DatasetError, ForewarnError)  # what the CLI layer catches


@pytest.mark.parametrize("fmt", ["backblaze", "cmapss"])
def test_unknown_options_are_named(fmt: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=rf"^unknown {fmt} options: colour"):
        open_dataset(fmt, tmp_path, colour="red")


def test_path_may_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        open_dataset("backblaze", str(tmp_path / "x.csv"))


def _fixed_events() -> Iterator[Event]:
    yield Telemetry(device_id="a", ts=TS, device_type="t", metrics={"m": 1.0})
    yield FailureEvent(device_id="a", ts=TS)


def test_dataset_is_reiterable_and_read_only() -> None:
    dataset = Dataset(
        name="memory",
        format="memory",
        time_unit="seconds",
        time_unit_seconds=1.0,
        source=_fixed_events,
        ground_truth_failures={"b": TS},
    )
    assert list(dataset.events()) == list(dataset.events())
    assert len(list(dataset.events())) == 2
    assert dataset.ground_truth_failures == {"b": TS}
    with pytest.raises(TypeError):
        dataset.ground_truth_failures["c"] = TS  # type: ignore[index]
    assert "source" not in repr(dataset)


def test_dataset_rejects_a_non_positive_time_unit() -> None:
    with pytest.raises(ValueError, match="time_unit_seconds"):
        Dataset(name="x", format="x", time_unit="x", time_unit_seconds=0.0, source=_fixed_events)


def test_fast_telemetry_equals_a_validated_one() -> None:
    fast = telemetry("dev-1", TS, "model-x", {"a": 1.5, "b": -2.0}, {"rack": "r1"})
    slow = Telemetry(
        device_id="dev-1",
        ts=TS,
        device_type="model-x",
        metrics={"a": 1.5, "b": -2.0},
        tags={"rack": "r1"},
    )
    assert fast == slow
    assert set(fast.__dict__) == set(Telemetry.model_fields)  # no field left to its default
    assert fast.model_fields_set == set(Telemetry.model_fields)
    assert Telemetry.model_validate_json(fast.model_dump_json()) == fast
    assert pickle.loads(pickle.dumps(fast)) == fast
    assert fast.model_copy(update={"device_type": "y"}).device_type == "y"
    assert fast.model_fields_set == set(Telemetry.model_fields)  # the copy got its own set


def test_fast_failure_equals_a_validated_one() -> None:
    fast = failure("dev-1", TS, "model-x")
    assert fast == FailureEvent(device_id="dev-1", ts=TS, device_type="model-x")
    assert set(fast.__dict__) == set(FailureEvent.model_fields)
    assert FailureEvent.model_validate_json(fast.model_dump_json()) == fast
    assert failure("dev-2", TS, None).device_type is None


def test_fast_messages_stay_frozen() -> None:
    fast = telemetry("dev-1", TS, "model-x", {}, {})
    with pytest.raises(ValueError, match="frozen"):
        fast.device_id = "other"  # type: ignore[misc]
