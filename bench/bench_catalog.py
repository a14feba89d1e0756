"""Benchmark the failure catalog (a script, not a test): python bench/bench_catalog.py

Runs the whole catalog through `snaplab run` serially and with --parallel N (default
3) and prints each scenario's phase seconds, the wall time of each run, and the change
against a baseline (default: bench/baseline-2026-11-28.json, the catalog as CI measured
it before issue 7). With --journal FILE it only summarises a journal an earlier run wrote;
--markdown prints the per-phase table in the README's form, dated.

Only the plain catalog is timed (variant ``catalog``): the per-scenario proofs (without
the fix, a second time scale, other agent versions) are tests, and their cost is CI's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_BASELINE = HERE / "baseline-2026-11-28.json"


def run_catalog(
    parallel: int, journal: Path, ids: Sequence[str] = (), prefix: str | None = None
) -> float:
    """One `snaplab run` (of ``ids``, or the whole catalog); its wall time in seconds."""
    start = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lab",
            "run",
            *ids,
            "--parallel",
            str(parallel),
            "--lab-prefix",
            prefix or f"bench{parallel}",
            "--journal",
            str(journal),
        ],
        check=False,
    )
    return time.monotonic() - start


def phase_names(journal: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for scenario in journal["scenarios"]:
        for phase in scenario["phases"]:
            if phase["name"] not in names:
                names.append(phase["name"])
    return names


def scenario_seconds(scenario: dict[str, Any]) -> float:
    return float(sum(p.get("seconds") or 0.0 for p in scenario["phases"]))


def print_phases(journal: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    names = phase_names(journal)
    before = {s["id"]: scenario_seconds(s) for s in (baseline or {}).get("scenarios", [])}
    header = "scenario".ljust(34) + "".join(n[:10].rjust(11) for n in names)
    print(header + "      total   before  status")
    for scenario in journal["scenarios"]:
        seconds = {p["name"]: p.get("seconds") for p in scenario["phases"]}
        cells = "".join(
            (f"{seconds[n]:.1f}" if seconds.get(n) is not None else "-").rjust(11) for n in names
        )
        total = scenario_seconds(scenario)
        was = before.get(scenario["id"])
        was_text = f"{was:.0f}" if was is not None else "-"
        print(
            scenario["id"].ljust(34) + cells + f"{total:11.0f}{was_text:>9}  {scenario['status']}"
        )


def markdown(journal: dict[str, Any], wall: float | None) -> str:
    names = phase_names(journal)
    lines = [
        "| scenario | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for scenario in journal["scenarios"]:
        seconds = {p["name"]: p.get("seconds") for p in scenario["phases"]}
        statuses = {p["name"]: p.get("status") for p in scenario["phases"]}
        cells = [
            "-" if statuses.get(n) == "skipped" or seconds.get(n) is None else f"{seconds[n]:.1f}"
            for n in names
        ]
        lines.append(f"| {scenario['id']} | " + " | ".join(cells) + " |")
    finished = journal.get("finished_at")
    stamp = str(finished)[:10] if finished else datetime.date.today().isoformat()
    passed = sum(1 for s in journal["scenarios"] if s["status"] == "passed")
    total = len(journal["scenarios"])
    wall_text = f"{wall:.0f} s" if wall is not None else "see the run"
    lines.append("")
    lines.append(f"Measured {stamp}: {passed} of {total} passed, whole run {wall_text}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--journal", type=Path, help="summarise this journal instead of running")
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    parser.add_argument("--markdown", action="store_true", help="print the README's table")
    parser.add_argument("--serial-only", action="store_true", help="skip the --parallel run")
    args = parser.parse_args()
    baseline = json.loads(args.baseline.read_text()) if args.baseline.is_file() else None
    if args.journal:
        journal = json.loads(args.journal.read_text())
        print_phases(journal, baseline)
        if args.markdown:
            print()
            print(markdown(journal, journal.get("seconds")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        walls: dict[int, float] = {}
        runs = (1,) if args.serial_only else (1, args.parallel)
        for parallel in runs:
            journal_path = Path(tmp) / f"journal-{parallel}.json"
            walls[parallel] = run_catalog(parallel, journal_path)
            journal = json.loads(journal_path.read_text())
            print(f"\n== --parallel {parallel}: whole catalog {walls[parallel]:.0f} s")
            print_phases(journal, baseline)
            if args.markdown:
                print()
                print(markdown(journal, walls[parallel]))
    print()
    before_walls = (baseline or {}).get("wall_seconds", {})
    for parallel, wall in walls.items():
        was = before_walls.get(str(parallel))
        change = f" (baseline {was} s, {wall / was - 1:+.0%})" if was else " (no baseline)"
        print(f"whole catalog, --parallel {parallel}: {wall:.0f} s{change}")


if __name__ == "__main__":
    main()
