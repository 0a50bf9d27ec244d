"""Generated data for docs/benchmarks.md: the same fleet at four cadences, and one pump.

    .venv/bin/python bench/generated.py fleets /tmp/forewarn-fleets [--devices 400]
    .venv/bin/python bench/generated.py pump /tmp/forewarn-pump

``fleets`` writes the fleet at 1 s, 1 min, 1 h and 1 day and runs ``forewarn backtest
csv`` on each with the horizon, the budget period and every engine duration scaled to
the cadence (50 steps), then prints one table. ``pump`` writes the single-series file
of the one-command example. Generated data: say so wherever it is reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from pipeline.datasets.synthetic import HORIZON_STEPS, write_fleet, write_single_series

CADENCES = {
    "1s": timedelta(seconds=1),
    "1m": timedelta(minutes=1),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
BUDGET = "66"
"""New alerts per 1,000 devices per horizon (about 1.4 x the fleet's failure rate)."""


def fleets(root: Path, devices: int) -> None:
    forewarn = str(Path(sys.executable).with_name("forewarn"))
    rows = []
    for name, cadence in CADENCES.items():
        fleet = write_fleet(root / name, cadence, devices=devices)
        horizon = f"{HORIZON_STEPS}{name[-1]}"
        out = root / name / "report"
        command = [
            forewarn, "backtest", "csv", str(fleet.data),
            "--device-column", "device", "--time-column", "time",
            "--failures", str(fleet.failures), "--counter-metrics", "errors",
            "--horizon", horizon, "--budget-period", horizon,
            "--alert-budget", BUDGET, "--no-plot", "--report-dir", str(out),
        ]  # fmt: skip
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        report = json.loads((out / "report.json").read_text())
        rows.append((name, fleet, report))
    print(
        "| cadence | readings | failures | variant | FDR | FAR | median lead (steps) "
        "| alerts | new alerts allowed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, fleet, report in rows:
        step_s = CADENCES[name].total_seconds()
        for variant in ("model", "baseline", "anomaly_only"):
            v = report[variant]
            lead = v["median_lead"]
            steps = "n/a" if lead is None else f"{lead * report['time_unit_seconds'] / step_s:.0f}"
            allowed = f"{report['alerts_allowed']:.1f}" if variant == "model" else ""
            print(
                f"| {name} | {fleet.readings:,} | {fleet.failure_count} | {variant} | "
                f"{100 * v['fdr']:.1f} % | {100 * v['far']:.1f} % | {steps} | "
                f"{v['alerts']} | {allowed} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("fleets", "pump"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=400)
    args = parser.parse_args()
    if args.what == "fleets":
        fleets(args.out, args.devices)
    else:
        data, failures = write_single_series(args.out)
        print(f"wrote {data} and {failures}")


if __name__ == "__main__":
    main()
