"""Build schema objects the engine made itself without re-validating them.

``BaseModel.model_construct`` costs ~7 µs per object (it walks defaults and aliases);
the engine builds several objects per reading, all from values it computed and checked,
so it sets the instance dictionary directly: what ``model_construct`` does once every
field is given. ``tests/unit/test_engine_scorer.py`` validates every kind of object
built here against its schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_new = object.__new__
_set = object.__setattr__
_FIELDS_SET: dict[type[BaseModel], frozenset[str]] = {}


def construct(cls: type[M], fields: dict[str, Any]) -> M:
    """An instance of ``cls`` holding ``fields`` (every field of the model, unchecked)."""
    fields_set = _FIELDS_SET.get(cls)
    if fields_set is None:
        fields_set = _FIELDS_SET[cls] = frozenset(cls.model_fields)
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", set(fields_set))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def maker(cls: type[M]) -> Callable[[dict[str, Any]], M]:
    """A constructor like :func:`construct` specialised to ``cls`` (for hot paths)."""
    fields_set = frozenset(cls.model_fields)

    def make(fields: dict[str, Any]) -> M:
        obj = _new(cls)
        _set(obj, "__dict__", fields)
        _set(obj, "__pydantic_fields_set__", set(fields_set))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    return make
