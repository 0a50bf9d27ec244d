"""CPython garbage-collector settings for the long runs: worker, replay, backtest, demo.

Forewarn keeps many long-lived objects (device states and records, River models, the
events a backtest reads) and allocates a few dozen short-lived ones per reading. With
CPython's default thresholds ``(700, 10, 10)`` those short-lived objects survive the
frequent young collections, are promoted, and so trigger full collections that walk
every long-lived object: a worker spent a third of its CPU time in the collector, the
Backblaze reader about half of its (``docs/benchmarks.md``, "garbage collection, fetch
size"). A young generation of 100,000 objects lets a batch's temporaries die by
reference counting before any collection sees them; freezing what start-up built keeps
the modules and the app's own objects out of every later full collection.

Reference cycles are still collected, only later; what is frozen stays (objects that
start-up allocated and the run keeps anyway).
"""

from __future__ import annotations

import gc

THRESHOLDS = (100_000, 20, 100)
"""``gc.set_threshold`` arguments: young-generation allocations, then how many young
(middle) collections trigger a middle (full) one; full collections also wait until a
quarter of the long-lived objects are new (CPython's own rule)."""


def tune() -> None:
    """Set :data:`THRESHOLDS` for this process (the command line calls it once)."""
    gc.set_threshold(*THRESHOLDS)


def freeze_startup() -> None:
    """Collect once, then move every object alive now out of the collector's sight.

    Called when a long run has finished starting (a worker's app is built): later full
    collections then walk only what the run allocated since.
    """
    gc.collect()
    gc.freeze()
