"""Row-level helpers shared by the file readers: opening, checking cells, building events.

File readers validate every value themselves (finite floats, aware UTC timestamps,
ids and names within the schema's limits) and then build messages without pydantic
validation: full validation costs several microseconds per reading, more than the
whole rest of the read, and would repeat checks already done once per file, per date
or per distinct id. ``tests/unit/test_datasets_api.py`` checks that messages built here
equal the same messages validated by pydantic.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from pipeline.errors import DatasetError
from schemas import FailureEvent, Telemetry
from schemas._base import (
    MAX_ID_LENGTH,
    MAX_METRIC_NAME_LENGTH,
    MAX_METRICS,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)

READ_ERRORS = (OSError, EOFError, UnicodeDecodeError, zlib.error)
"""What a damaged or vanished file raises while it is read (``csv.Error`` is added by callers)."""

_CONTROL = re.compile(r"[\x00-\x1f]")
_EPOCH_SECONDS = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
DELIMITERS = ",;\t|"
"""Delimiters the sniffer chooses from."""


def sniff_delimiter(line: str) -> str:
    """The delimiter of a header line (``csv.Sniffer`` among ``DELIMITERS``; else ``,``)."""
    try:
        return csv.Sniffer().sniff(line, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","  # one column, or nothing to choose from


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


def require_file(path: Path) -> None:
    """Raise ``DatasetError`` unless ``path`` is an existing regular file."""
    if not path.exists():
        raise DatasetError(f"no such file: {path}")
    if not path.is_file():
        raise DatasetError(f"not a file: {path}")


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Open a text file for the ``csv`` module, gunzipping ``*.gz``; a leading BOM is dropped."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
                yield handle
        else:
            with open(path, encoding="utf-8-sig", newline="") as handle:
                yield handle
    except FileNotFoundError:
        raise DatasetError(f"no such file: {path}") from None


def read_error(path: Path, error: BaseException) -> DatasetError:
    """The one-line error for a file that cannot be read or decoded."""
    detail = str(error).splitlines()[0] if str(error) else type(error).__name__
    return DatasetError(f"{path}: cannot read: {detail}")


def cell_error(path: Path, line: int, column: str, value: str, what: str) -> DatasetError:
    """``<file> row <n>: <column>=<value!r> is not <what>``; ``line`` is 1-based."""
    return DatasetError(f"{path} row {line}: {column}={value!r} is not {what}")


def to_float(value: str, path: Path, line: int, column: str) -> float:
    """Parse one finite float; NaN and infinity are malformed like any other non-number."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise cell_error(path, line, column, value, "a number")
    return number


def metric_cell_error(
    path: Path, line: int, row: list[str], columns: list[tuple[int, str]]
) -> DatasetError:
    """The error for the first non-empty cell of ``columns`` that is not a finite number."""
    for index, name in columns:
        if row[index]:
            try:
                to_float(row[index], path, line, name)
            except DatasetError as error:
                return error
    return DatasetError(f"{path} row {line}: a metric is not a number")


def is_label(value: str, max_length: int = MAX_ID_LENGTH) -> bool:
    """True for a non-empty name of at most ``max_length`` characters, none of them control."""
    return 0 < len(value) <= max_length and _CONTROL.search(value) is None


def is_identifier(value: str, max_length: int = MAX_ID_LENGTH) -> bool:
    """True for a valid device id, type or tag value: a label not ending in a backslash
    (InfluxDB's line protocol cannot carry one, see ``schemas._base.ID_PATTERN``)."""
    return is_label(value, max_length) and not value.endswith("\\")


def check_label(value: str, path: Path, line: int, column: str, what: str) -> None:
    """Raise unless ``value`` is a valid device id or device type."""
    if not is_identifier(value):
        raise cell_error(
            path,
            line,
            column,
            value,
            f"a valid {what} (1-200 characters, no control characters, no trailing backslash)",
        )


def check_metric_names(path: Path, names: list[str]) -> None:
    """Raise unless every name is a valid metric name and there are not too many of them."""
    bad = [name for name in names if not is_label(name, MAX_METRIC_NAME_LENGTH)]
    if bad:
        raise DatasetError(
            f"{path}: invalid column names {bad!r} (1-{MAX_METRIC_NAME_LENGTH} characters, "
            "no control characters)"
        )
    if len(names) > MAX_METRICS:
        raise DatasetError(f"{path}: {len(names)} metric columns, more than {MAX_METRICS}")


def check_tags(path: Path, names: list[str]) -> None:
    """Raise unless the tag columns fit the schema's limits on tag names and count."""
    check_metric_names(path, names)
    if len(names) > MAX_TAGS:
        raise DatasetError(f"{path}: {len(names)} tag columns, more than {MAX_TAGS}")


def check_tag_value(value: str, path: Path, line: int, column: str) -> None:
    """Raise unless ``value`` fits in a tag."""
    if not is_identifier(value, MAX_TAG_LENGTH):
        raise cell_error(
            path,
            line,
            column,
            value,
            f"a valid tag (1-{MAX_TAG_LENGTH} characters, no control characters, "
            "no trailing backslash)",
        )


def check_header(path: Path, header: list[str] | None, required: list[str]) -> dict[str, int]:
    """Map column name to index, raising if the header is absent, duplicated or incomplete."""
    if not header:
        raise DatasetError(f"{path}: empty file, expected a header row")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetError(f"{path}: duplicate columns: {', '.join(duplicates)}")
    missing = [name for name in required if name not in header]
    if missing:
        raise DatasetError(f"{path}: missing columns: {', '.join(missing)}")
    return {name: index for index, name in enumerate(header)}


# What ``model_construct`` does once it has resolved aliases and defaults: set the
# instance's ``__dict__`` and pydantic's three bookkeeping slots. ``model_construct``
# itself is slower than full validation in pydantic 2.14 (it resolves aliases and
# defaults field by field on every call), so the readers take this short path; the
# contract test fails if the schema gains a field these builders do not set.
_set = object.__setattr__
_new_telemetry = Telemetry.__new__
_new_failure = FailureEvent.__new__


def telemetry(
    device_id: str,
    ts: datetime,
    device_type: str,
    metrics: dict[str, float],
    tags: dict[str, str],
) -> Telemetry:
    """A ``Telemetry`` from values the caller has already checked against the schema."""
    message = _new_telemetry(Telemetry)
    _set(
        message,
        "__dict__",
        {
            "device_id": device_id,
            "ts": ts,
            "device_type": device_type,
            "metrics": metrics,
            "tags": tags,
        },
    )
    _set(message, "__pydantic_fields_set__", {"device_id", "ts", "device_type", "metrics", "tags"})
    _set(message, "__pydantic_extra__", None)
    _set(message, "__pydantic_private__", None)
    return message


def failure(device_id: str, ts: datetime, device_type: str | None) -> FailureEvent:
    """A ``FailureEvent`` from values the caller has already checked against the schema."""
    message = _new_failure(FailureEvent)
    _set(
        message,
        "__dict__",
        {"device_id": device_id, "ts": ts, "device_type": device_type, "reason": None},
    )
    _set(message, "__pydantic_fields_set__", {"device_id", "ts", "device_type", "reason"})
    _set(message, "__pydantic_extra__", None)
    _set(message, "__pydantic_private__", None)
    return message
