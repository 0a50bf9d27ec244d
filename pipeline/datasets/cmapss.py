"""NASA C-MAPSS turbofan run-to-failure simulation, one cycle mapped to one day."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.datasets._dataset import Dataset, Event
from pipeline.datasets._options import Options
from pipeline.datasets._rows import (
    READ_ERRORS,
    cell_error,
    failure,
    open_text,
    read_error,
    require_file,
    telemetry,
    to_float,
)
from pipeline.errors import DatasetError

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Cycle 0 of the first timeline; cycle ``c`` is ``EPOCH + c`` days."""
CYCLE_SECONDS = 86_400.0
MAX_CYCLES = 1_000_000
METRICS = (
    *(f"setting_{n}" for n in range(1, 4)),
    *(f"sensor_{n}" for n in range(1, 22)),
)
COLUMNS = ("unit", "cycle", *METRICS)
SPLITS = ("both", "train", "test")
OPTIONS = ("subset", "split")
"""Every option ``open_cmapss`` takes."""
_FILE_NAME = re.compile(r"^(train|test)_(FD\d{3})\.txt$")
_SUBSET = re.compile(r"^FD\d{3}$")


@dataclass(frozen=True)
class _Row:
    unit: int
    cycle: int
    metrics: dict[str, float]


def open_cmapss(path: Path, **options: object) -> Dataset:
    """A C-MAPSS dataset from its directory (options ``subset``, ``split``) or one file.

    Training engines fail at their last cycle (a ``FailureEvent``); test engines are cut
    off before failure, and their true failure time (last cycle + RUL from
    ``RUL_<subset>.txt``) goes to ``ground_truth_failures`` only. With ``split="both"``
    (the default for a directory) the test timeline starts after the last training cycle.
    """
    opts = Options("cmapss", options)
    subset = opts.text("subset")
    split = opts.choice("split", SPLITS, None)
    opts.done()
    if subset is not None and not _SUBSET.match(subset):
        raise DatasetError(f"cmapss option subset={subset!r} is not FD001, FD002, ...")
    if not path.exists():
        raise DatasetError(f"no such file: {path}")
    if path.is_dir():
        subset = subset or "FD001"
        split = split or "both"
        train = path / f"train_{subset}.txt"
        test = path / f"test_{subset}.txt"
    else:
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise DatasetError(
                f"{path}: a single C-MAPSS file must be named train_FDxxx.txt or test_FDxxx.txt"
            )
        if (subset, split) != (None, None) and (subset, split) != (match[2], match[1]):
            raise DatasetError(
                f"{path}: options subset/split contradict the file name; "
                "give the directory to choose a subset or split"
            )
        subset, split = match[2], match[1]
        train = test = path
    rul = test.with_name(f"RUL_{subset}.txt")
    wanted = {"both": [train, test, rul], "train": [train], "test": [test, rul]}[split]
    for file in wanted:
        require_file(file)

    # Test engines need the training timeline's end; read the training file once here.
    offset = _last_cycle(_read(train)) if split == "both" else 0
    truth: dict[str, datetime] = {}
    if split != "train":
        truth = _ground_truth(test, rul, offset)
    name = f"cmapss-{subset}" if split == "both" else f"cmapss-{subset}-{split}"

    def source() -> Iterator[Event]:
        events: list[tuple[int, int, Event]] = []
        if split != "test":
            events += _train_events(_read(train), subset)
        if split != "train":
            events += _test_events(_read(test), subset, offset)
        events.sort(key=lambda item: (item[0], item[1]))  # stable: ties keep file order
        return (event for _, _, event in events)

    return Dataset(
        name=name,
        format="cmapss",
        time_unit="cycles",
        time_unit_seconds=CYCLE_SECONDS,
        source=source,
        ground_truth_failures=truth,
    )


def _ts(cycle: int, cache: dict[int, datetime]) -> datetime:
    ts = cache.get(cycle)
    if ts is None:
        ts = cache[cycle] = EPOCH + timedelta(days=cycle)
    return ts


def _last_cycle(rows: list[_Row]) -> int:
    return max((row.cycle for row in rows), default=0)


def _last_rows(rows: list[_Row]) -> dict[int, _Row]:
    last: dict[int, _Row] = {}
    for row in rows:
        if row.unit not in last or row.cycle > last[row.unit].cycle:
            last[row.unit] = row
    return last


def _train_events(rows: list[_Row], subset: str) -> list[tuple[int, int, Event]]:
    cache: dict[int, datetime] = {}
    events: list[tuple[int, int, Event]] = [
        (
            row.cycle,
            0,
            telemetry(f"train-{row.unit}", _ts(row.cycle, cache), subset, row.metrics, {}),
        )
        for row in rows
    ]
    for unit, row in sorted(_last_rows(rows).items()):
        events.append((row.cycle, 1, failure(f"train-{unit}", _ts(row.cycle, cache), subset)))
    return events


def _test_events(rows: list[_Row], subset: str, offset: int) -> list[tuple[int, int, Event]]:
    cache: dict[int, datetime] = {}
    return [
        (
            offset + row.cycle,
            0,
            telemetry(f"test-{row.unit}", _ts(offset + row.cycle, cache), subset, row.metrics, {}),
        )
        for row in rows
    ]


def _ground_truth(test: Path, rul: Path, offset: int) -> dict[str, datetime]:
    last = _last_rows(_read(test))
    remaining = _read_rul(rul)
    if sorted(last) != list(range(1, len(remaining) + 1)):
        raise DatasetError(
            f"{rul}: {len(remaining)} RUL values, but {test} has units "
            f"{min(last, default=0)}..{max(last, default=0)} ({len(last)} units)"
        )
    cache: dict[int, datetime] = {}
    return {
        f"test-{unit}": _ts(offset + last[unit].cycle + remaining[unit - 1], cache)
        for unit in sorted(last)
    }


def _whole(text: str, path: Path, line: int, column: str, minimum: int) -> int:
    """An integer in ``[minimum, MAX_CYCLES]``; larger values would overflow the calendar."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if not minimum <= value <= MAX_CYCLES:
        raise cell_error(path, line, column, text, f"a whole number in {minimum}..{MAX_CYCLES}")
    return value


def _read(path: Path) -> list[_Row]:
    rows: list[_Row] = []
    last_cycle: dict[int, int] = {}
    try:
        with open_text(path) as handle:
            for line, text in enumerate(handle, start=1):
                cells = text.split()
                if not cells:
                    continue
                if len(cells) != len(COLUMNS):
                    raise DatasetError(
                        f"{path} row {line}: expected {len(COLUMNS)} values, found {len(cells)}"
                    )
                unit = _whole(cells[0], path, line, "unit", 1)
                cycle = _whole(cells[1], path, line, "cycle", 1)
                if cycle <= last_cycle.get(unit, 0):
                    raise DatasetError(
                        f"{path} row {line}: unit {unit} cycle {cycle} does not follow "
                        f"cycle {last_cycle[unit]}"
                    )
                last_cycle[unit] = cycle
                try:
                    values = list(map(float, cells[2:]))
                except ValueError:
                    values = [math.nan]
                if not all(map(math.isfinite, values)):
                    for name, cell in zip(METRICS, cells[2:], strict=True):
                        to_float(cell, path, line, name)  # raises for the first bad cell
                rows.append(_Row(unit, cycle, dict(zip(METRICS, values, strict=True))))
    except READ_ERRORS as error:
        raise read_error(path, error) from None
    return rows


def _read_rul(path: Path) -> list[int]:
    values: list[int] = []
    try:
        with open_text(path) as handle:
            for line, text in enumerate(handle, start=1):
                cells = text.split()
                if not cells:
                    continue
                if len(cells) != 1:
                    raise DatasetError(f"{path} row {line}: expected 1 value, found {len(cells)}")
                values.append(_whole(cells[0], path, line, "rul", 0))
    except READ_ERRORS as error:
        raise read_error(path, error) from None
    return values
