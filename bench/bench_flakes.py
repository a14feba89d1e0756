"""Run the catalog N times and count what failed where (a script, not a test).

    python bench/bench_flakes.py --runs 10 --parallel-runs 3 [--parallel 3] [ID...]

A catalog that fails only when a runbook is wrong passes every run; this script is how
that is measured. Each run is a whole `snaplab run` (serial, or with --parallel for the
last --parallel-runs runs) with its own lab prefix and journal; at the end it prints, per
run, the passes and failures, and per failed scenario the phase that failed and its
error's first line, so each failure can be traced to its root cause. Journals are kept in
--out (default reports/flakes/) for that.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_catalog import run_catalog  # same folder: the scripts run as files


@dataclass(frozen=True)
class RunResult:
    index: int
    parallel: int
    seconds: float
    passed: int
    failed: list[tuple[str, str, str]]  # (scenario, phase, error's first line)


def run_once(index: int, parallel: int, ids: list[str], out: Path) -> RunResult:
    journal = out / f"run-{index:02d}-p{parallel}.json"
    seconds = run_catalog(parallel, journal, ids, prefix=f"flk{index}")
    if not journal.is_file():
        return RunResult(index, parallel, seconds, 0, [("(run)", "-", "no journal written")])
    return summarise(index, parallel, seconds, json.loads(journal.read_text()))


def summarise(index: int, parallel: int, seconds: float, journal: dict[str, Any]) -> RunResult:
    passed, failed = 0, []
    for record in journal["scenarios"]:
        if record["status"] == "passed":
            passed += 1
            continue
        phase = record.get("failed_phase") or "-"
        errors = {p["name"]: p.get("error") or "" for p in record["phases"]}
        first_line = (errors.get(phase) or record["status"]).splitlines()[0][:160]
        failed.append((record["id"], phase, first_line))
    return RunResult(index, parallel, seconds, passed, failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("ids", nargs="*", help="scenarios (default: the whole catalog)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--parallel-runs", type=int, default=3, help="runs with --parallel")
    parser.add_argument("--parallel", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/flakes"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for index in range(1, args.runs + 1):
        parallel = args.parallel if index > args.runs - args.parallel_runs else 1
        result = run_once(index, parallel, args.ids, args.out)
        results.append(result)
        print(
            f"run {index:2d} --parallel {parallel}: {result.passed} passed, "
            f"{len(result.failed)} failed, {result.seconds:.0f} s",
            flush=True,
        )
        for scenario, phase, error in result.failed:
            print(f"    {scenario}: {phase}: {error}", flush=True)
    clean = sum(1 for r in results if not r.failed)
    print(f"\n{clean} of {len(results)} runs passed every scenario")
    phases = Counter((scenario, phase) for r in results for scenario, phase, _ in r.failed)
    for (scenario, phase), count in phases.most_common():
        print(f"  {count}x {scenario} failed in {phase}")


if __name__ == "__main__":
    main()
