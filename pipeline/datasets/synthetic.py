"""A generated fleet with a known degradation signal and known failure times, at any cadence.

The fleet is defined in *steps* and written at a chosen cadence (1 s, 1 min, 1 h, 1 day
...), so the same fleet at two cadences differs only in its clock: a method whose
results change with the cadence has a hidden constant in it. Per device and step:

- ``temp`` (a gauge): device baseline + N(0, 1); in the last ``DEGRADE_STEPS`` steps
  before a failure it rises by up to 6 (``6 * ramp ** 1.5``, ramp 0 -> 1);
- ``vib`` (a gauge): 2 + N(0, 0.1), up to +1 with the same ramp;
- ``load`` (a gauge, no signal): 50 + N(0, 5), plus fleet-wide-rate spikes of +40 for
  5 steps (1 % of steps) that fool an anomaly detector but not a learner;
- ``errors`` (a counter): +1 with probability 0.002 a step, 0.04 while degrading (the
  rule baseline's signal: informative but noisy).

30 % of devices fail (some twice: a failure is followed by a replacement, a new
baseline and more readings); the others never fail. 2 % of readings are missing.
Written as ``fleet.csv`` (``device,time,temp,vib,load,errors``) and ``failures.csv``
(``device,time,kind``). Deterministic for a seed.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2024, 1, 1, tzinfo=UTC)
DEGRADE_STEPS = 40
"""Steps before a failure during which the signal builds up."""
HORIZON_STEPS = 50
"""The horizon the fleet is meant to be run with, in steps (covers the degradation)."""


@dataclass(frozen=True)
class SyntheticFleet:
    """Where a generated fleet was written, and what it holds."""

    data: Path
    failures: Path
    cadence: timedelta
    readings: int
    failure_count: int
    devices: int

    @property
    def horizon(self) -> timedelta:
        """``HORIZON_STEPS`` at this cadence."""
        return self.cadence * HORIZON_STEPS


def _schedule(rng: random.Random, steps: int) -> list[int]:
    if rng.random() >= 0.3:
        return []
    first = rng.randint(DEGRADE_STEPS + 60, steps - 10)
    if first < steps - 160 and rng.random() < 0.4:
        return [first, rng.randint(first + DEGRADE_STEPS + 60, steps - 10)]
    return [first]


def write_fleet(
    folder: Path, cadence: timedelta, *, devices: int = 100, steps: int = 300, seed: int = 0
) -> SyntheticFleet:
    """Write the fleet at ``cadence`` into ``folder`` (created); see the module doc."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    spikes = {step for step in range(steps) if rng.random() < 0.01}
    spiking = {s + k for s in spikes for k in range(5)}
    rows: list[tuple[int, str, float, float, float, int]] = []
    failures: list[tuple[int, str]] = []
    for index in range(devices):
        device = f"dev{index:03d}"
        fails = _schedule(rng, steps)
        failures.extend((step, device) for step in fails)
        base = rng.uniform(35.0, 45.0)
        errors = 0
        skip_until = -1
        for step in range(steps):
            if step in fails:
                base = rng.uniform(35.0, 45.0)  # replaced: a new life, a new baseline
                errors = 0
                skip_until = step + 3
            if step < skip_until or rng.random() < 0.02:
                continue
            left = min((f - step for f in fails if f > step), default=None)
            ramp = max(0.0, 1.0 - left / DEGRADE_STEPS) if left is not None else 0.0
            if rng.random() < (0.04 if ramp > 0.0 else 0.002):
                errors += 1
            temp = base + rng.gauss(0.0, 1.0) + 6.0 * ramp**1.5
            vib = 2.0 + rng.gauss(0.0, 0.1) + ramp
            load = 50.0 + rng.gauss(0.0, 5.0) + (40.0 if step in spiking else 0.0)
            rows.append((step, device, temp, vib, load, errors))
    rows.sort(key=lambda row: (row[0], row[1]))
    data = folder / "fleet.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device", "time", "temp", "vib", "load", "errors"])
        for step, device, temp, vib, load, errors in rows:
            ts = (START + step * cadence).isoformat()
            writer.writerow([device, ts, f"{temp:.3f}", f"{vib:.4f}", f"{load:.2f}", errors])
    failure_file = folder / "failures.csv"
    with failure_file.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device", "time", "kind"])
        for step, device in sorted(failures):
            writer.writerow([device, (START + step * cadence).isoformat(), "failure"])
    return SyntheticFleet(data, failure_file, cadence, len(rows), len(failures), devices)


def write_single_series(folder: Path, *, days: int = 60, seed: int = 1) -> tuple[Path, Path]:
    """One pump every 5 minutes: ``pump.csv`` (``timestamp,temperature,vibration,anomaly``,
    no device column) and ``failures.csv`` (``device,time``; device ``pump1``).

    Four failures (days 12, 27, 41, 55 when ``days`` allows); temperature and vibration
    build up over the 2 days before each. ``anomaly`` is a label a tool wrote next to the
    data (1 in the last day before a failure): it must not become a metric.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    step = timedelta(minutes=5)
    fails = [START + timedelta(days=d) for d in (12, 27, 41, 55) if d < days]
    data = folder / "pump.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "temperature", "vibration", "anomaly"])
        for i in range(days * 288):
            ts = START + i * step
            upcoming = [f for f in fails if f >= ts]
            left = (upcoming[0] - ts).total_seconds() / 86_400.0 if upcoming else None
            ramp = max(0.0, 1.0 - left / 2.0) if left is not None else 0.0
            temp = 60.0 + rng.gauss(0.0, 1.0) + 8.0 * ramp
            vib = 1.0 + rng.gauss(0.0, 0.05) + 0.5 * ramp
            writer.writerow(
                [ts.strftime("%Y-%m-%d %H:%M:%S"), f"{temp:.3f}", f"{vib:.4f}", int(ramp > 0.5)]
            )
    failures = folder / "failures.csv"
    with failures.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["device", "time"])
        for ts in fails:
            writer.writerow(["pump1", ts.isoformat()])
    return data, failures
