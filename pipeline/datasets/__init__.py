"""Dataset readers: files in, one time-ordered stream of readings and failure events out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.datasets._dataset import Dataset, Event
from pipeline.datasets.backblaze import open_backblaze
from pipeline.datasets.cmapss import OPTIONS as CMAPSS_OPTIONS
from pipeline.datasets.cmapss import open_cmapss
from pipeline.datasets.generic_csv import OPTIONS as CSV_OPTIONS
from pipeline.datasets.generic_csv import open_csv
from pipeline.errors import DatasetError

_OPENERS: dict[str, Callable[..., Dataset]] = {
    "backblaze": open_backblaze,
    "cmapss": open_cmapss,
    "csv": open_csv,
}
FORMATS = tuple(_OPENERS)
"""The names ``open_dataset`` accepts."""
OPTION_KEYS: dict[str, tuple[str, ...]] = {
    "backblaze": (),
    "cmapss": CMAPSS_OPTIONS,
    "csv": CSV_OPTIONS,
}
"""Every option each format takes (``forewarn backtest -o KEY=VALUE``)."""


def open_dataset(fmt: str, path: Path | str, **options: object) -> Dataset:
    """Open a dataset of format ``fmt`` (one of ``FORMATS``); see docs/datasets.md for options.

    Checks the path, the options and the header now; rows are checked while
    ``Dataset.events()`` reads them. Every problem is a one-line ``DatasetError``.
    """
    opener = _OPENERS.get(fmt)
    if opener is None:
        raise DatasetError(f"unknown dataset format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return opener(Path(path), **options)


__all__ = ["FORMATS", "OPTION_KEYS", "Dataset", "Event", "open_dataset"]
