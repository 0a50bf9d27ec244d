"""Backblaze Drive Stats: one row per drive per day, streamed in file order.

Reads any daily Backblaze CSV from 2013 to today as published: ``date, serial_number,
model, failure`` are required; ``capacity_bytes`` (if present) and every
``smart_<N>_raw`` / ``smart_<N>_normalized`` column are metrics; every other column
(``datacenter``, ``cluster_id``, ``pod_id``, ``pod_slot_num``, ``is_legacy_format`` since
2023, ...) is ignored. Files of a directory may differ in columns (Backblaze added SMART
attributes over the years); each file is read by its own header.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

from pipeline.datasets._dataset import Dataset, Event
from pipeline.datasets._options import Options
from pipeline.datasets._rows import (
    READ_ERRORS,
    cell_error,
    check_header,
    check_label,
    check_metric_names,
    failure,
    metric_cell_error,
    open_text,
    read_error,
    telemetry,
)
from pipeline.errors import DatasetError
from schemas import FailureEvent

REQUIRED_COLUMNS = ["date", "serial_number", "model", "failure"]
OPTIONAL_METRICS = ("capacity_bytes",)
SMART_COLUMN = re.compile(r"^smart_\d+_(raw|normalized)$")
SUFFIXES = (".csv", ".csv.gz")
DAY_SECONDS = 86_400.0


def open_backblaze(path: Path, **options: object) -> Dataset:
    """A Backblaze dataset from one daily CSV (plain or gzipped) or a directory of them.

    The files must already be in date order (Backblaze publishes them so); the reader
    streams and raises ``DatasetError`` at the first row whose date goes backwards.
    """
    Options("backblaze", options).done()
    files = _files(path)
    for file in files:
        _read_header(file)
    return Dataset(
        name=_stem(path) if path.is_file() else path.name,
        format="backblaze",
        time_unit="days",
        time_unit_seconds=DAY_SECONDS,
        source=lambda: _events(files),
    )


def _stem(path: Path) -> str:
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise DatasetError(f"no such file: {path}")
    if path.is_file():
        return [path]
    files = sorted(
        (item for item in path.iterdir() if item.is_file() and item.name.endswith(SUFFIXES)),
        key=lambda item: item.name,
    )
    if not files:
        raise DatasetError(f"{path}: no *.csv or *.csv.gz files in this directory")
    stems = [_stem(file) for file in files]
    twice = sorted({stem for stem in stems if stems.count(stem) > 1})
    if twice:
        raise DatasetError(f"{path}: both .csv and .csv.gz for {', '.join(twice)}")
    return files


def _read_header(path: Path) -> None:
    try:
        with open_text(path) as handle:
            header = next(csv.reader(handle), None)
    except (*READ_ERRORS, csv.Error) as error:
        raise read_error(path, error) from None
    columns = list(check_header(path, header, REQUIRED_COLUMNS))
    check_metric_names(path, _metric_names(columns))


def _metric_names(header: list[str]) -> list[str]:
    """The metric columns of a header: ``capacity_bytes`` if present, every SMART value."""
    return [name for name in header if name in OPTIONAL_METRICS or SMART_COLUMN.match(name)]


def _day(text: str, path: Path, line: int) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise cell_error(path, line, "date", text, "a date (YYYY-MM-DD)") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _events(files: list[Path]) -> Iterator[Event]:
    # State that spans files: the current day and the failures waiting for its end.
    last_day = ""
    last_ts = datetime.min.replace(tzinfo=UTC)
    pending: list[FailureEvent] = []
    known_ids: set[str] = set()
    known_models: set[str] = set()
    for path in files:
        try:
            with open_text(path) as handle:
                reader = csv.reader(handle)
                columns = check_header(path, next(reader, None), REQUIRED_COLUMNS)
                width = len(columns)
                i_date, i_serial, i_model, i_failure = (
                    columns[name] for name in ("date", "serial_number", "model", "failure")
                )
                metrics_at = [(columns[name], name) for name in _metric_names(list(columns))]
                isfinite = math.isfinite
                for row in reader:
                    if len(row) != width:
                        if not row:
                            continue  # a blank line
                        raise DatasetError(
                            f"{path} row {reader.line_num}: expected {width} fields, "
                            f"found {len(row)}"
                        )
                    day = row[i_date]
                    if day != last_day:
                        ts = _day(day, path, reader.line_num)
                        if ts < last_ts:
                            raise DatasetError(
                                f"{path} row {reader.line_num}: date {day} comes after "
                                f"{last_ts.date()}; Backblaze input must be in date order"
                            )
                        if ts != last_ts:
                            yield from pending
                            pending = []
                        last_day, last_ts = day, ts
                    serial = row[i_serial]
                    if serial not in known_ids:
                        check_label(serial, path, reader.line_num, "serial_number", "device id")
                        known_ids.add(serial)
                    model = row[i_model]
                    if model not in known_models:
                        check_label(model, path, reader.line_num, "model", "device type")
                        known_models.add(model)
                    try:
                        metrics = {name: float(row[i]) for i, name in metrics_at if row[i]}
                    except ValueError:
                        raise metric_cell_error(path, reader.line_num, row, metrics_at) from None
                    if not all(map(isfinite, metrics.values())):
                        raise metric_cell_error(path, reader.line_num, row, metrics_at)
                    yield telemetry(serial, last_ts, model, metrics, {})
                    failed = row[i_failure]
                    if failed == "1":
                        pending.append(failure(serial, last_ts, model))
                    elif failed != "0":
                        raise cell_error(path, reader.line_num, "failure", failed, "0 or 1")
        except (*READ_ERRORS, csv.Error) as error:
            raise read_error(path, error) from None
    yield from pending
