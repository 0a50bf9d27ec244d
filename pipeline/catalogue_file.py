"""Load the user's metric catalogue (``FOREWARN_METRIC_CATALOGUE``) on top of SMART's."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pipeline.engine.catalogue import SMART, Catalogue, parse_entries
from pipeline.errors import ConfigError


def load_catalogue(path: Path | None) -> Catalogue:
    """The built-in catalogue extended by the TOML file at ``path`` (none: built-in only).

    Raises :class:`ConfigError` naming the file when it cannot be read or parsed, or
    naming the entry that is malformed.
    """
    if path is None:
        return SMART
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"FOREWARN_METRIC_CATALOGUE: cannot read {path}: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"FOREWARN_METRIC_CATALOGUE: {path} is not TOML: {error}") from error
    return SMART.extended(parse_entries(document, source=str(path)))
