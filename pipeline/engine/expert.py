"""The expert score: what an operator already knows about error counters, no learning.

A fixed, hand-written risk logit over the device's error counters (all of them, as
recognised by :mod:`pipeline.engine.kinds`), from three pieces of domain knowledge,
each in log space so that one new bad sector on a clean drive weighs like a doubling
on a worn one:

- a counter that **rose recently** is the strongest sign (``rose``: log growth over the
  last days, half-life ``rise_halflife``), weight ``W_ROSE``;
- **growth since the device was first seen** (damage accrued while watched), weight
  ``W_GROWTH``;
- the **magnitude** of the count (old damage), weight ``W_LEVEL``.

Counters add up: a drive with reallocated *and* pending sectors is riskier than one
with either. ``BIAS`` places a device with clean counters at the fleet's base rate
(about 0.2 % of Backblaze readings precede a failure within 14 days: logit ≈ -6).
The weights were written down before any run and not fitted; the fleet model starts
from this score (its logit is the model's offset) and learns corrections to it.
"""

from __future__ import annotations

from collections.abc import Sequence

BIAS = -6.0
W_ROSE = 2.0
W_GROWTH = 1.0
W_LEVEL = 0.5


def expert_logit(vec: Sequence[float], counters: Sequence[int]) -> float:
    """The expert's logit for a feature vector; ``counters`` from ``Layout.counters``.

    Each index points at a counter's level, followed by its ``rose`` and ``growth``.
    """
    total = BIAS
    for i in counters:
        total += W_LEVEL * vec[i] + W_ROSE * vec[i + 1] + W_GROWTH * vec[i + 2]
    return total
