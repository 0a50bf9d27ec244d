"""What a worker has done so far: the numbers ``pipeline_health`` and the logs report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Counters:
    """Monotonic counts of one worker process (reset when it restarts)."""

    readings: int = 0
    rejected: int = 0
    duplicates: int = 0
    offset_resets: int = 0
    partition_changes: int = 0
    internal_errors: int = 0
    parked: int = 0
    """Messages that waited for a model epoch (the watermark barrier)."""
    markers: int = 0
    """Watermark markers sent to ``training-examples``."""
    examples_late: int = 0
    """Training examples that reached the trainer after their epoch had closed."""
    examples_duplicate: int = 0
    """Training examples received twice (a restarted worker re-sends; learnt once)."""
    last_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    """Newest offset processed per (topic, partition)."""
    labels: dict[tuple[str, bool], int] = field(default_factory=dict)
    """Training examples sent per (group, label)."""
