"""Engine configuration for the commands that build an engine (worker, demo, tests)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pipeline.backtest.presets import PRESETS
from pipeline.engine import EngineConfig
from pipeline.errors import ConfigError

Override = float | int | bool | str | None


def engine_config_for(preset: str, overrides: Mapping[str, Override] | None = None) -> EngineConfig:
    """A preset's engine configuration (the presets of ``forewarn backtest``), with overrides.

    Overrides name ``EngineConfig`` fields; durations are given in seconds.
    """
    try:
        options: dict[str, Any] = dict(PRESETS[preset])
    except KeyError:
        raise ConfigError(
            f"unknown engine preset {preset!r} (one of: {', '.join(sorted(PRESETS))})"
        ) from None
    defaults = EngineConfig()
    fields = {field.name for field in dataclasses.fields(EngineConfig)}
    for name, value in (overrides or {}).items():
        if name not in fields:
            raise ConfigError(f"unknown engine option {name!r} in FOREWARN_ENGINE_OVERRIDES")
        is_duration = isinstance(getattr(defaults, name), timedelta)
        if is_duration and isinstance(value, int | float) and not isinstance(value, bool):
            options[name] = timedelta(seconds=value)
        else:
            options[name] = value
    try:
        return EngineConfig(**options)
    except TypeError as error:
        raise ConfigError(f"bad engine option: {error}") from None
