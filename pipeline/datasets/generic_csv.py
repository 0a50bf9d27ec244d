"""Any CSV of readings: columns mapped by options, rows sorted by time in memory."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path

import structlog

from pipeline.datasets._dataset import Dataset, Event
from pipeline.datasets._options import Options
from pipeline.datasets._rows import (
    READ_ERRORS,
    cell_error,
    check_header,
    check_label,
    check_metric_names,
    check_tag_value,
    check_tags,
    failure,
    is_identifier,
    metric_cell_error,
    open_text,
    read_error,
    require_file,
    telemetry,
)
from pipeline.errors import DatasetError

TIME_UNITS = {"seconds": 1.0, "minutes": 60.0, "hours": 3_600.0, "days": 86_400.0}
TRUE_FLAGS = frozenset({"1", "true", "yes"})
FALSE_FLAGS = frozenset({"", "0", "false", "no"})
DEFAULT_DEVICE_TYPE = "default"
_EPOCH_SECONDS = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Layout:
    path: Path
    delimiter: str
    device_column: str
    time_column: str
    failure_column: str | None
    metric_columns: list[str] | None
    tag_columns: list[str]
    device_type_column: str | None
    device_type: str


def open_csv(path: Path, **options: object) -> Dataset:
    """A dataset from one CSV file (plain or gzipped), one reading per row.

    Options: ``device_column`` and ``time_column`` (required); ``failure_column``,
    ``metric_columns`` (default: every other column whose non-empty values are all
    numbers), ``tag_columns``, ``device_type_column`` or ``device_type``, ``time_unit``
    and ``time_unit_seconds``, ``delimiter``. Times are ISO 8601 (naive means UTC) or
    epoch seconds (a plain number).
    """
    opts = Options("csv", options)
    device_column = opts.required_text("device_column")
    time_column = opts.required_text("time_column")
    failure_column = opts.text("failure_column")
    metric_columns = opts.columns("metric_columns")
    tag_columns = opts.columns("tag_columns") or []
    device_type_column = opts.text("device_type_column")
    device_type = opts.text("device_type")
    time_unit = opts.text("time_unit", "seconds")
    time_unit_seconds = opts.positive_number("time_unit_seconds")
    delimiter = opts.text("delimiter", ",")
    opts.done()

    delimiter = {"tab": "\t", "\\t": "\t"}.get(delimiter, delimiter)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise DatasetError(f"csv option delimiter={delimiter!r} is not one character")
    if device_type_column is not None and device_type is not None:
        raise DatasetError("csv options device_type and device_type_column exclude each other")
    if device_type is not None and not is_identifier(device_type):
        raise DatasetError(f"csv option device_type={device_type!r} is not a valid device type")
    seconds = _time_unit_seconds(time_unit, time_unit_seconds)

    roles = [
        name
        for name in (device_column, time_column, failure_column, device_type_column)
        if name is not None
    ]
    listed = [*roles, *(metric_columns or []), *tag_columns]
    reused = sorted({name for name in listed if listed.count(name) > 1})
    if reused:
        raise DatasetError(f"csv options use columns more than once: {', '.join(reused)}")

    require_file(path)
    try:
        with open_text(path) as handle:
            header = next(csv.reader(handle, delimiter=delimiter), None)
    except (*READ_ERRORS, csv.Error) as error:
        raise read_error(path, error) from None
    check_header(path, header, listed)
    if metric_columns is not None:
        check_metric_names(path, metric_columns)
    check_tags(path, tag_columns)

    layout = _Layout(
        path=path,
        delimiter=delimiter,
        device_column=device_column,
        time_column=time_column,
        failure_column=failure_column,
        metric_columns=metric_columns,
        tag_columns=tag_columns,
        device_type_column=device_type_column,
        device_type=device_type or DEFAULT_DEVICE_TYPE,
    )
    name = path.name.removesuffix(".gz")
    return Dataset(
        name=name.rsplit(".", 1)[0] if "." in name else name,
        format="csv",
        time_unit=time_unit,
        time_unit_seconds=seconds,
        source=lambda: _events(layout),
    )


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


def parse_time(text: str) -> datetime | None:
    """An aware UTC datetime from ISO 8601 (naive means UTC) or epoch seconds, else ``None``."""
    text = text.strip()
    try:
        if _EPOCH_SECONDS.match(text):
            seconds = float(text)
            return datetime.fromtimestamp(seconds, UTC) if math.isfinite(seconds) else None
        ts = datetime.fromisoformat(text)
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_rows(layout: _Layout) -> tuple[list[str], list[tuple[int, list[str]]]]:
    path = layout.path
    rows: list[tuple[int, list[str]]] = []
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle, delimiter=layout.delimiter)
            header = list(check_header(path, next(reader, None), []))
            for row in reader:
                if len(row) != len(header):
                    if not row:
                        continue  # a blank line
                    raise DatasetError(
                        f"{path} row {reader.line_num}: expected {len(header)} fields, "
                        f"found {len(row)}"
                    )
                rows.append((reader.line_num, row))
    except (*READ_ERRORS, csv.Error) as error:
        raise read_error(path, error) from None
    return header, rows


def _detect_metrics(
    layout: _Layout, header: list[str], rows: list[tuple[int, list[str]]]
) -> list[str]:
    used = {layout.device_column, layout.time_column, layout.failure_column}
    used.update((layout.device_type_column, *layout.tag_columns))
    metrics: list[str] = []
    ignored: list[str] = []
    for index, name in enumerate(header):
        if name in used:
            continue
        cells = [row[index] for _, row in rows if row[index]]
        (metrics if cells and all(map(_is_number, cells)) else ignored).append(name)
    check_metric_names(layout.path, metrics)
    log.debug("csv_columns", path=str(layout.path), metrics=metrics, ignored=ignored)
    return metrics


def _events(layout: _Layout) -> Iterator[Event]:
    path = layout.path
    header, rows = _read_rows(layout)
    metric_names = layout.metric_columns
    if metric_names is None:
        metric_names = _detect_metrics(layout, header, rows)
    columns = check_header(
        path,
        header,
        [layout.device_column, layout.time_column, *metric_names, *layout.tag_columns],
    )
    i_device = columns[layout.device_column]
    i_time = columns[layout.time_column]
    i_failure = None if layout.failure_column is None else columns[layout.failure_column]
    i_type = None if layout.device_type_column is None else columns[layout.device_type_column]
    metrics_at = [(columns[name], name) for name in metric_names]
    tags_at = [(columns[name], name) for name in layout.tag_columns]
    isfinite = math.isfinite

    times: dict[str, datetime] = {}
    known_ids: set[str] = set()
    known_types: set[str] = set()
    events: list[tuple[datetime, int, Event]] = []
    for line, row in rows:
        device_id = row[i_device]
        if device_id not in known_ids:
            check_label(device_id, path, line, layout.device_column, "device id")
            known_ids.add(device_id)
        text = row[i_time]
        ts = times.get(text)
        if ts is None:
            ts = parse_time(text)
            if ts is None:
                raise cell_error(
                    path, line, layout.time_column, text, "an ISO 8601 time or epoch seconds"
                )
            times[text] = ts
        device_type = layout.device_type
        if i_type is not None:
            device_type = row[i_type]
            if device_type not in known_types:
                check_label(device_type, path, line, header[i_type], "device type")
                known_types.add(device_type)
        try:
            metrics = {name: float(row[i]) for i, name in metrics_at if row[i]}
        except ValueError:
            raise metric_cell_error(path, line, row, metrics_at) from None
        if not all(map(isfinite, metrics.values())):
            raise metric_cell_error(path, line, row, metrics_at)
        tags = {name: row[i] for i, name in tags_at if row[i]}
        for name, value in tags.items():
            check_tag_value(value, path, line, name)
        events.append((ts, 0, telemetry(device_id, ts, device_type, metrics, tags)))
        if i_failure is not None:
            flag = row[i_failure].strip().lower()
            if flag in TRUE_FLAGS:
                events.append((ts, 1, failure(device_id, ts, device_type)))
            elif flag not in FALSE_FLAGS:
                raise cell_error(
                    path,
                    line,
                    header[i_failure],
                    row[i_failure],
                    "a failure flag (1/0, true/false, yes/no, empty)",
                )
    events.sort(key=itemgetter(0, 1))  # stable: ties keep file order
    return (event for _, _, event in events)
