"""Any CSV of readings: columns mapped by options, rows sorted by time in memory.

Made for files as people have them: one device or many, the delimiter sniffed, columns
named or numbered, failures as a flag column or as a separate event list, maintenance
from a log. Every mistake is one line naming the command-line flag that fixes it.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from pathlib import Path

import structlog

from pipeline.datasets._dataset import Dataset, Event
from pipeline.datasets._options import Options
from pipeline.datasets._rows import (
    READ_ERRORS,
    cell_error,
    check_label,
    check_metric_names,
    check_tag_value,
    check_tags,
    failure,
    is_identifier,
    metric_cell_error,
    open_text,
    parse_time,
    read_error,
    require_file,
    sniff_delimiter,
    telemetry,
)
from pipeline.datasets.event_files import read_event_file
from pipeline.durations import parse_duration
from pipeline.errors import ConfigError, DatasetError

TIME_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3_600.0, "days": 86_400.0}
TRUE_FLAGS = frozenset({"1", "1.0", "true", "yes"})
FALSE_FLAGS = frozenset({"", "0", "0.0", "false", "no"})
DEFAULT_DEVICE_TYPE = "default"
LABEL_LIKE = re.compile(
    r"(^|[^a-z])(anomal(y|ies|ous)|change_?points?|labels?|failures?|failed|faults?|"
    r"targets?|outliers?|is_broken|broken|attack)($|[^a-z])",
    re.IGNORECASE,
)
"""Column names that look like labels: never auto-detected as metrics."""

OPTIONS = (
    "device_column",
    "device",
    "time_column",
    "failure_column",
    "failures",
    "maintenance",
    "metric_columns",
    "tag_columns",
    "device_type_column",
    "device_type",
    "time_unit",
    "time_unit_seconds",
    "time_shift",
    "delimiter",
)
"""Every option ``open_csv`` takes (``forewarn backtest csv -o KEY=VALUE``)."""
FLAGS = {
    "device_column": "--device-column",
    "device": "--device",
    "time_column": "--time-column",
    "failure_column": "--failure-column",
    "failures": "--failures",
    "maintenance": "--maintenance",
    "metric_columns": "--metric-columns",
}
"""Options that ``forewarn backtest`` takes as flags of their own; the others are ``-o``."""

log = structlog.get_logger(__name__)


def flag(name: str) -> str:
    """How a user sets option ``name`` on the command line."""
    return FLAGS.get(name, f"-o {name}=...")


def looks_like_label(name: str) -> bool:
    """True for a column name such as ``anomaly``, ``changepoint``, ``comp1_failure``."""
    return LABEL_LIKE.search(name) is not None


@dataclass(frozen=True)
class _Layout:
    path: Path
    delimiter: str
    header: list[str]
    device_column: str | None
    device: str | None
    time_column: str
    failure_column: str | None
    metric_columns: list[str] | None
    tag_columns: list[str]
    device_type_column: str | None
    device_type: str
    shift: timedelta
    failures: Path | None
    maintenance: Path | None


def open_csv(path: Path, **options: object) -> Dataset:
    """A dataset from one CSV file (plain or gzipped), one reading per row.

    Options (see :data:`OPTIONS` and docs/datasets.md): ``time_column`` (required);
    ``device_column``, or ``device`` (one name for a single-series file); failures as
    a ``failure_column`` of flags (``0/1/0.0/1.0/true/false/yes/no``) and/or a
    ``failures`` file of ``device,time[,kind]`` rows; ``maintenance`` (a file of
    repairs or replacements); ``metric_columns`` (default: every other numeric column
    whose name does not look like a label), ``tag_columns``, ``device_type_column`` or
    ``device_type``, ``time_unit`` and ``time_unit_seconds``, ``time_shift`` (a duration
    added to every reading's time), ``delimiter`` (default: sniffed from the header).
    A column is named by its header, or by its 1-based position (``1`` is the first
    column); an empty header cell is named ``column_<N>``. Times are ISO 8601 (naive
    means UTC) or epoch seconds.
    """
    opts = Options("csv", options, flags=FLAGS)
    device_column = opts.text("device_column")
    device = opts.text("device")
    time_column = opts.text("time_column")
    failure_column = opts.text("failure_column")
    failures = opts.text("failures")
    maintenance = opts.text("maintenance")
    metric_columns = opts.columns("metric_columns")
    tag_columns = opts.columns("tag_columns") or []
    device_type_column = opts.text("device_type_column")
    device_type = opts.text("device_type")
    time_unit = opts.text("time_unit", "seconds")
    time_unit_seconds = opts.positive_number("time_unit_seconds")
    time_shift = opts.text("time_shift")
    delimiter = opts.text("delimiter")
    opts.done()

    if device_column is None and device is None:
        raise DatasetError(
            "csv needs the device: --device-column COLUMN, or --device NAME for a file "
            "that holds one device"
        )
    if device_column is not None and device is not None:
        raise DatasetError("csv: give --device-column or --device, not both")
    if device is not None and not is_identifier(device):
        raise DatasetError(f"--device {device!r} is not a valid device id")
    if time_column is None:
        raise DatasetError("csv needs --time-column COLUMN (the column holding the timestamps)")
    if delimiter is not None:
        delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise DatasetError(f"csv option delimiter={delimiter!r} is not one character")
    if device_type_column is not None and device_type is not None:
        raise DatasetError("csv options device_type and device_type_column exclude each other")
    if device_type is not None and not is_identifier(device_type):
        raise DatasetError(f"csv option device_type={device_type!r} is not a valid device type")
    seconds = _time_unit_seconds(time_unit, time_unit_seconds)
    shift = timedelta(0)
    if time_shift is not None:
        try:
            shift = parse_duration(time_shift, seconds, "-o time_shift")
        except ConfigError as error:
            raise DatasetError(str(error)) from None
    failures_path = _side_file(failures, "failures")
    maintenance_path = _side_file(maintenance, "maintenance")

    require_file(path)
    raw_header, delimiter = _header(path, delimiter)
    header = [cell.strip() or f"column_{i}" for i, cell in enumerate(raw_header, start=1)]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate columns: {', '.join(duplicates)}")
    resolve = _Resolver(path, header)
    device_column = resolve.one(device_column, "device_column")
    time_column = resolve.one(time_column, "time_column") or time_column
    failure_column = resolve.one(failure_column, "failure_column")
    device_type_column = resolve.one(device_type_column, "device_type_column")
    if metric_columns is not None:
        metric_columns = resolve.many(metric_columns, "metric_columns")
    tag_columns = resolve.many(tag_columns, "tag_columns")

    roles = [
        name
        for name in (device_column, time_column, failure_column, device_type_column)
        if name is not None
    ]
    listed = [*roles, *(metric_columns or []), *tag_columns]
    reused = sorted({name for name in listed if listed.count(name) > 1})
    if reused:
        raise DatasetError(f"csv options use columns more than once: {', '.join(reused)}")
    if metric_columns is not None:
        check_metric_names(path, metric_columns)
    check_tags(path, tag_columns)

    warnings: list[str] = []
    if metric_columns is None:
        used = {*roles, *tag_columns}
        left_out = [n for n in header if n not in used and looks_like_label(n)]
        if left_out:
            warnings.append(
                f"columns that look like labels are not used as metrics: {', '.join(left_out)} "
                "(name them in --metric-columns to use them anyway)"
            )
    else:
        named = [name for name in metric_columns if looks_like_label(name)]
        if named:
            warnings.append(
                f"columns that look like labels are used as metrics: {', '.join(named)} "
                "(a label used as a feature makes every figure meaningless)"
            )
    for text in warnings:
        log.info("csv_columns", path=str(path), warning=text)

    layout = _Layout(
        path=path,
        delimiter=delimiter,
        header=header,
        device_column=device_column,
        device=device,
        time_column=time_column,
        failure_column=failure_column,
        metric_columns=metric_columns,
        tag_columns=tag_columns,
        device_type_column=device_type_column,
        device_type=device_type or DEFAULT_DEVICE_TYPE,
        shift=shift,
        failures=failures_path,
        maintenance=maintenance_path,
    )
    name = path.name.removesuffix(".gz")
    return Dataset(
        name=name.rsplit(".", 1)[0] if "." in name else name,
        format="csv",
        time_unit=time_unit,
        time_unit_seconds=seconds,
        source=lambda: _events(layout),
        warnings=tuple(warnings),
    )


def _side_file(value: str | None, option: str) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise DatasetError(f"{flag(option)} {value}: no such file")
    return path


def _header(path: Path, delimiter: str | None) -> tuple[list[str], str]:
    """The header row and the delimiter (sniffed from the header line when not given)."""
    try:
        with open_text(path) as handle:
            first = handle.readline()
    except (*READ_ERRORS, csv.Error) as error:
        raise read_error(path, error) from None
    if not first.strip():
        raise DatasetError(f"{path}: empty file, expected a header row")
    if delimiter is None:
        delimiter = sniff_delimiter(first)
    return next(csv.reader([first], delimiter=delimiter)), delimiter


class _Resolver:
    """Column options to header names: a name, or a 1-based position."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header

    def one(self, value: str | None, option: str) -> str | None:
        if value is None:
            return None
        if value in self.header:
            return value
        if value.isdigit() and 1 <= int(value) <= len(self.header):
            return self.header[int(value) - 1]
        shown = ", ".join(f"{i}:{name}" for i, name in enumerate(self.header, start=1))
        raise DatasetError(
            f"{flag(option)} {value!r}: no such column in {self.path.name} "
            f"(columns by position: {shown})"
        )

    def many(self, values: list[str], option: str) -> list[str]:
        return [name for name in (self.one(value, option) for value in values) if name]


def _time_unit_seconds(time_unit: str, given: float | None) -> float:
    known = TIME_UNITS.get(time_unit)
    if given is None:
        if known is None:
            raise DatasetError(
                f"csv option time_unit={time_unit!r} needs time_unit_seconds "
                f"(known units: {', '.join(TIME_UNITS)})"
            )
        return known
    if known is not None and known != given:
        raise DatasetError(
            f"csv options time_unit={time_unit!r} and time_unit_seconds={given} disagree"
        )
    return given


def parse_flag(text: str) -> bool | None:
    """A failure flag: ``1/0``, ``1.0/0.0``, ``true/false``, ``yes/no``, empty; else ``None``."""
    flag_text = text.strip().lower()
    if flag_text in TRUE_FLAGS:
        return True
    if flag_text in FALSE_FLAGS:
        return False
    return None


MISSING_CELLS = frozenset({"", "na", "n/a", "null", "none"})
"""Metric cells read as "no value" (any case), as R and SQL exports write them; nan is an error."""


def _present(text: str) -> bool:
    return text.strip().lower() not in MISSING_CELLS


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_rows(layout: _Layout) -> list[tuple[int, list[str]]]:
    path = layout.path
    width = len(layout.header)
    rows: list[tuple[int, list[str]]] = []
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle, delimiter=layout.delimiter)
            next(reader, None)
            for row in reader:
                if len(row) != width:
                    if not row:
                        continue  # a blank line
                    raise DatasetError(
                        f"{path} row {reader.line_num}: expected {width} fields, found {len(row)}"
                    )
                rows.append((reader.line_num, row))
    except (*READ_ERRORS, csv.Error) as error:
        raise read_error(path, error) from None
    return rows


def _detect_metrics(layout: _Layout, rows: list[tuple[int, list[str]]]) -> list[str]:
    used = {layout.device_column, layout.time_column, layout.failure_column}
    used.update((layout.device_type_column, *layout.tag_columns))
    metrics: list[str] = []
    ignored: list[str] = []
    for index, name in enumerate(layout.header):
        if name in used:
            continue
        if looks_like_label(name):
            ignored.append(name)
            continue
        cells = [(line, row[index]) for line, row in rows if _present(row[index])]
        numbers = [_is_number(cell) for _, cell in cells]
        if any(numbers) and not all(numbers):
            line, cell = next(c for c, ok in zip(cells, numbers, strict=True) if not ok)
            raise DatasetError(
                f"{layout.path} row {line}: {name}={cell!r} is not a number in a column of "
                "numbers (fix the cell, or name the metrics with --metric-columns)"
            )
        (metrics if cells and all(numbers) else ignored).append(name)
    check_metric_names(layout.path, metrics)
    log.debug("csv_columns", path=str(layout.path), metrics=metrics, ignored=ignored)
    return metrics


def _events(layout: _Layout) -> Iterator[Event]:
    path = layout.path
    header = layout.header
    rows = _read_rows(layout)
    metric_names = layout.metric_columns
    if metric_names is None:
        metric_names = _detect_metrics(layout, rows)
    columns = {name: index for index, name in enumerate(header)}
    i_device = None if layout.device_column is None else columns[layout.device_column]
    i_time = columns[layout.time_column]
    i_failure = None if layout.failure_column is None else columns[layout.failure_column]
    i_type = None if layout.device_type_column is None else columns[layout.device_type_column]
    metrics_at = [(columns[name], name) for name in metric_names]
    tags_at = [(columns[name], name) for name in layout.tag_columns]
    isfinite = math.isfinite
    shift = layout.shift

    times: dict[str, datetime] = {}
    known_ids: set[str] = set()
    known_types: set[str] = set()
    type_of: dict[str, str] = {}
    events: list[tuple[datetime, int, Event]] = []
    for line, row in rows:
        if i_device is None:
            device_id = layout.device or ""
        else:
            device_id = row[i_device]
            if device_id not in known_ids:
                check_label(device_id, path, line, header[i_device], "device id")
                known_ids.add(device_id)
        text = row[i_time]
        ts = times.get(text)
        if ts is None:
            parsed = parse_time(text)
            if parsed is None:
                raise cell_error(
                    path, line, header[i_time], text, "an ISO 8601 time or epoch seconds"
                )
            ts = times[text] = parsed + shift
        device_type = layout.device_type
        if i_type is not None:
            device_type = row[i_type]
            if device_type not in known_types:
                check_label(device_type, path, line, header[i_type], "device type")
                known_types.add(device_type)
        type_of[device_id] = device_type
        try:
            metrics = {name: float(row[i]) for i, name in metrics_at if _present(row[i])}
        except ValueError:
            raise metric_cell_error(path, line, row, metrics_at) from None
        if not all(map(isfinite, metrics.values())):
            raise metric_cell_error(path, line, row, metrics_at)
        tags = {name: row[i] for i, name in tags_at if row[i]}
        for name, value in tags.items():
            check_tag_value(value, path, line, name)
        events.append((ts, 0, telemetry(device_id, ts, device_type, metrics, tags)))
        if i_failure is not None:
            flagged = parse_flag(row[i_failure])
            if flagged is None:
                raise cell_error(
                    path,
                    line,
                    header[i_failure],
                    row[i_failure],
                    "a failure flag (1/0, 1.0/0.0, true/false, yes/no, empty)",
                )
            if flagged:
                events.append((ts, 1, failure(device_id, ts, device_type)))
    for side, option in ((layout.failures, "failures"), (layout.maintenance, "maintenance")):
        if side is not None:
            events.extend(
                read_event_file(
                    side,
                    flag=flag(option),
                    maintenance_only=option == "maintenance",
                    device=layout.device,
                    device_column=layout.device_column,
                    time_column=layout.time_column,
                    type_of=type_of,
                )
            )
    events.sort(key=itemgetter(0, 1))  # stable: ties keep file order
    return (event for _, _, event in events)
