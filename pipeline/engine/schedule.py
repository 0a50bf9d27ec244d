"""When fleet models change, in event time: epochs, watermarks and the model barrier.

Event time is cut into *epochs* of ``interval`` seconds (``publish_interval``, by
default ``horizon / label_slots``): epoch ``k`` holds the training examples stamped in
``[k * interval, (k + 1) * interval)``. Every input partition (a *lane*) has a
watermark ``W``: the newest reading time it has processed.

- An example is stamped ``max(event time, W - lateness)``, where the event time is the
  time of the message that labelled it (the reading that aged it out, the failure, the
  verdict). A failure or verdict that reaches its lane at most ``lateness`` behind the
  lane's watermark is therefore counted in its own epoch; a later one in a later epoch.
- A lane whose watermark reaches ``(k + 1) * interval + lateness`` has sent every
  example of epochs ``<= k`` (:meth:`ModelSchedule.complete_through`); it says so with
  a watermark marker. Once every lane has, epoch ``k`` is *closed*: the trainer learns
  its examples in a canonical order and publishes the new model versions.
- The model trained through epoch ``k`` scores readings from lane time
  ``(k + 2) * interval + lateness`` on (:meth:`ModelSchedule.needed`). A lane that gets
  there before epoch ``k`` is closed waits for it (the watermark barrier), so which
  model scores a reading never depends on wall-clock timing, replay speed, or how
  partitions interleave. The extra epoch lets lanes run one epoch apart without
  waiting for each other.

The same arithmetic drives the backtest (all lanes in one process) and the workers
(lanes spread over processes, markers on ``training-examples``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NO_EPOCH = -(2**62)
"""Epoch index before any epoch (nothing closed, nothing needed)."""


@dataclass(frozen=True, slots=True)
class ModelSchedule:
    """The epoch grid. ``interval_s`` and ``lateness_s`` in seconds (both > 0 / >= 0)."""

    interval_s: float
    lateness_s: float

    def epoch(self, stamp: float) -> int:
        """Epoch of an example stamped ``stamp`` (POSIX seconds)."""
        return math.floor(stamp / self.interval_s)

    def stamp(self, t: float, watermark: float) -> float:
        """Stamp of an example labelled by a message at ``t`` in a lane at ``watermark``."""
        floor = watermark - self.lateness_s
        return t if t > floor else floor

    def complete_through(self, watermark: float) -> int:
        """Newest epoch whose examples a lane at ``watermark`` has all sent (``NO_EPOCH``
        for a lane that has seen no reading: ``watermark`` is ``-inf``)."""
        if not math.isfinite(watermark):
            return NO_EPOCH
        return math.floor((watermark - self.lateness_s) / self.interval_s) - 1

    def needed(self, watermark: float) -> int:
        """Newest epoch whose model must be installed before a lane at ``watermark`` scores."""
        return self.complete_through(watermark) - 1

    def applies_from(self, epoch: int) -> float:
        """Lane time from which the model trained through ``epoch`` scores."""
        return (epoch + 2) * self.interval_s + self.lateness_s
