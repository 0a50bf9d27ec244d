"""Event lists beside the readings: ``--failures`` and ``--maintenance`` files.

Rows are ``device,time[,kind]`` (``time[,kind]`` for a single-series file), with or
without a header. A failure's kind (``comp4``, ``bearing``) becomes its ``reason``;
kinds ``repaired``/``replaced``/``maintenance`` make ``MaintenanceEvent`` s.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import structlog

from pipeline.datasets._dataset import Event
from pipeline.datasets._rows import (
    READ_ERRORS,
    cell_error,
    check_label,
    failure,
    open_text,
    parse_time,
    read_error,
    sniff_delimiter,
)
from pipeline.errors import DatasetError
from schemas import MaintenanceEvent, MaintenanceKind

log = structlog.get_logger(__name__)

MAINTENANCE_KINDS: dict[str, MaintenanceKind] = {
    "repair": "repaired",
    "repaired": "repaired",
    "maintenance": "repaired",
    "replace": "replaced",
    "replaced": "replaced",
}
"""Event kinds (``--failures`` third column) that are maintenance, not failures."""

_DEVICE_NAMES = ("device", "device_id", "deviceid", "id", "machine", "machineid", "unit", "serial")
_TIME_NAMES = ("time", "timestamp", "ts", "datetime", "date")


def read_event_file(
    path: Path,
    *,
    flag: str,
    maintenance_only: bool,
    device: str | None,
    device_column: str | None,
    time_column: str,
    type_of: dict[str, str],
) -> list[tuple[datetime, int, Event]]:
    """Events from a ``device,time[,kind]`` file (``--failures`` or ``--maintenance``).

    A header is recognised when the first row holds no time; its columns are found by
    name (the main file's device/time column names, or ``device``/``time`` and the
    like), else by position. With ``--device`` the device column may be left out.
    Kinds ``repaired``/``replaced``/``maintenance`` are maintenance; in ``--failures``
    any other kind is a failure whose kind becomes the event's reason.
    """
    who = flag
    try:
        with open_text(path) as handle:
            first = handle.readline()
            delimiter = sniff_delimiter(first)
            handle.seek(0)
            rows = [(n, row) for n, row in enumerate(csv.reader(handle, delimiter=delimiter), 1)]
    except (*READ_ERRORS, csv.Error) as error:
        raise read_error(path, error) from None
    rows = [(n, [cell.strip() for cell in row]) for n, row in rows if any(c.strip() for c in row)]
    if not rows:
        return []
    single = device is not None
    head = rows[0][1]
    has_header = not any(parse_time(cell) for cell in head)
    i_device: int | None
    i_time: int | None = None
    if has_header:
        names = [cell.lower() for cell in head]
        device_names = (str(device_column or "").lower(), *_DEVICE_NAMES)
        time_names = (time_column.lower(), *_TIME_NAMES)
        i_time = next((i for i, name in enumerate(names) if name in time_names), None)
        i_device = next((i for i, name in enumerate(names) if name in device_names), None)
        rows = rows[1:]
    if i_time is None:  # by position: device,time[,kind], or time[,kind] for one device
        sample = rows[0][1] if rows else head
        if single and (len(sample) == 1 or parse_time(sample[0]) is not None):
            i_device, i_time = None, 0
        else:
            i_device, i_time = 0, 1
    if i_device is None and not single:
        raise DatasetError(
            f"{who} {path}: no device column (expected device,time[,kind]; or give --device "
            "for a single-series file)"
        )
    used = {i_time, i_device}
    i_kind = next((i for i in range(len(head)) if i not in used), len(head))
    out: list[tuple[datetime, int, Event]] = []
    unknown: set[str] = set()
    for line, row in rows:
        if max(i_time, -1 if i_device is None else i_device) >= len(row):
            raise DatasetError(f"{who} {path} row {line}: expected device,time[,kind]")
        device_id = (device or "") if i_device is None else row[i_device]
        check_label(device_id, path, line, "device", "device id")
        parsed = parse_time(row[i_time])
        if parsed is None:
            raise cell_error(path, line, "time", row[i_time], "an ISO 8601 time or epoch seconds")
        kind = row[i_kind] if i_kind < len(row) else ""
        device_type = type_of.get(device_id)
        if device_type is None:
            unknown.add(device_id)
        maintenance = MAINTENANCE_KINDS.get(kind.lower())
        if maintenance_only or maintenance is not None:
            event: Event = MaintenanceEvent.model_construct(
                device_id=device_id,
                ts=parsed,
                kind=maintenance or "replaced",
                device_type=device_type,
                reason=kind[:200] or None,
            )
            out.append((parsed, 2, event))
        else:
            reason = None if kind.lower() in ("", "failure", "failed", "1") else kind[:200]
            event = failure(device_id, parsed, device_type)
            if reason is not None:
                event = event.model_copy(update={"reason": reason})
            out.append((parsed, 1, event))
    if unknown:
        log.warning("csv_side_file_unknown_devices", file=str(path), devices=sorted(unknown)[:10])
    return out
