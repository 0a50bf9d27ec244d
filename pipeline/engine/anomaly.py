"""A device's anomaly score: how far its metrics sit from its own normal behaviour.

The per-device model of normal behaviour is the first-seen baseline and the
exponentially weighted variance that :mod:`pipeline.engine.features` keeps for every
metric (a per-device scaler, ``SLOTS`` floats per metric). River's
``preprocessing.StandardScaler`` or ``anomaly.GaussianScorer`` per device would hold the
same statistics in dictionaries several times the size and cost ~20 µs a reading; the
engine keeps them in one ``array('d')`` per device instead.
"""

from __future__ import annotations

ANOMALY_SCALE = 9.0
"""Mean squared z-score that maps to 0.5 (three standard deviations on average)."""


def anomaly_score(mean_sq_z: float, scale: float = ANOMALY_SCALE) -> float:
    """Map a mean squared z-score to [0, 1): 0.5 at ``scale``.

    A rational squash rather than a chi-square tail probability, so that large
    deviations still rank against each other instead of all rounding to 1.0.

    >>> anomaly_score(0.0), anomaly_score(9.0), round(anomaly_score(81.0), 2)
    (0.0, 0.5, 0.9)
    """
    return mean_sq_z / (mean_sq_z + scale)
