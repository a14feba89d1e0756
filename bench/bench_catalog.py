"""Benchmark the failure catalog (a script, not a test): python bench/bench_catalog.py

Runs the whole catalog through `snaplab run` serially and with --parallel N (default
2, this machine's cores) and prints each scenario's phase seconds and the wall time of
each run. With --journal FILE it only summarises a journal an earlier run wrote.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_catalog(parallel: int, journal: Path) -> float:
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "run",
            "--parallel",
            str(parallel),
            "--journal",
            str(journal),
        ],
        check=False,
    )
    return time.monotonic() - start


def print_phases(journal: dict[str, Any]) -> None:
    names: list[str] = []
    for scenario in journal["scenarios"]:
        for phase in scenario["phases"]:
            if phase["name"] not in names:
                names.append(phase["name"])
    print("scenario".ljust(26) + "".join(n[:10].rjust(11) for n in names) + "  status")
    for scenario in journal["scenarios"]:
        seconds = {p["name"]: p.get("seconds") for p in scenario["phases"]}
        cells = "".join(
            (f"{seconds[n]:.1f}" if seconds.get(n) is not None else "-").rjust(11) for n in names
        )
        print(scenario["id"].ljust(26) + cells + f"  {scenario['status']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--journal", type=Path, help="summarise this journal instead of running")
    args = parser.parse_args()
    if args.journal:
        print_phases(json.loads(args.journal.read_text()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        walls = {}
        for parallel in (1, args.parallel):
            journal = Path(tmp) / f"journal-{parallel}.json"
            walls[parallel] = run_catalog(parallel, journal)
            print(f"\n== --parallel {parallel}: whole catalog {walls[parallel]:.0f} s")
            print_phases(json.loads(journal.read_text()))
    print()
    for parallel, wall in walls.items():
        print(f"whole catalog, --parallel {parallel}: {wall:.0f} s")


if __name__ == "__main__":
    main()
