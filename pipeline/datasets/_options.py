"""Checked access to the loosely typed ``**options`` of ``open_dataset``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import overload

from pipeline.errors import DatasetError


class Options:
    """Options for one format, taken one by one; ``done()`` rejects any left unread.

    Values may come from Python (``str``, ``float``, lists of ``str``) or from a command
    line (every value a string; a column list as ``"a,b,c"``).
    """

    def __init__(
        self, fmt: str, options: Mapping[str, object], *, flags: Mapping[str, str] | None = None
    ) -> None:
        self._fmt = fmt
        self._left = dict(options)
        self._known: list[str] = []
        self._flags = dict(flags or {})

    def _take(self, name: str) -> object:
        self._known.append(name)
        return self._left.pop(name, None)

    def _bad(self, name: str, value: object, what: str) -> DatasetError:
        given = self._flags.get(name)
        if given is not None:
            return DatasetError(f"{given} {value!r} is not {what}")
        return DatasetError(f"{self._fmt} option {name}={value!r} is not {what}")

    @overload
    def text(self, name: str, default: str) -> str: ...
    @overload
    def text(self, name: str, default: None = None) -> str | None: ...
    def text(self, name: str, default: str | None = None) -> str | None:
        """A non-empty string option, or ``default`` when absent."""
        value = self._take(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self._bad(name, value, "a non-empty string")
        return value

    def required_text(self, name: str) -> str:
        """A non-empty string option that must be given."""
        value = self.text(name)
        if value is None:
            raise DatasetError(f"{self._fmt} needs {self._flags.get(name, f'option {name}')}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str | None) -> str | None:
        """One of ``choices``, or ``default`` when absent."""
        value = self.text(name, default)
        if value is not None and value not in choices:
            raise self._bad(name, value, f"one of {', '.join(choices)}")
        return value

    def columns(self, name: str) -> list[str] | None:
        """A list of column names (a sequence of strings, or one comma-separated string)."""
        value = self._take(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if not isinstance(value, list | tuple) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise self._bad(name, value, "a list of column names")
        names = [str(item) for item in value]
        if len(set(names)) != len(names):
            raise self._bad(name, value, "a list of distinct column names")
        return names

    def positive_number(self, name: str) -> float | None:
        """A finite number above zero (or a string that parses as one), or ``None``."""
        value = self._take(name)
        if value is None:
            return None
        number = math.nan
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise self._bad(name, value, "a positive number")
        return number

    def done(self) -> None:
        """Raise if an option was given that this format does not know."""
        if self._left:
            valid = ", ".join(sorted(self._known)) or "none"
            raise DatasetError(
                f"unknown {self._fmt} options: {', '.join(sorted(self._left))} "
                f"(valid -o keys: {valid})"
            )
