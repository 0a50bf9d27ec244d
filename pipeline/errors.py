"""Forewarn's error hierarchy; the command-line layer turns these into one-line messages."""

from __future__ import annotations


class ForewarnError(Exception):
    """Base of every error Forewarn raises on purpose."""


class ConfigError(ForewarnError):
    """A setting or command-line option is invalid."""


class DatasetError(ForewarnError):
    """A dataset file is missing, of an unknown format, or has a malformed row."""


class SnapshotError(ForewarnError):
    """A model snapshot is unsigned, tampered with, or cannot be loaded."""


class SinkError(ForewarnError):
    """A sink could not write its batch."""
