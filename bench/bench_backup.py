"""Benchmark backup jobs (a script, not a test): python bench/bench_backup.py

Prints the wall time of a healthy backup (first: extension installed; then: enable
only) and of one that times out because the agent is stopped, at the lab's time
scale, next to the Azure durations they stand for. The lab it makes is removed.
"""

from __future__ import annotations

import time

from lab.platform.roster import Roster
from lab.platform.timescale import SNAPSHOT_SUBTASK_TIMEOUT, time_scale
from lab.provision import backups, engine
from lab.provision import lab as labs
from lab.provision.spec import lab_spec

LAB = "benchbackup"


def timed_backup(roster: Roster, vm: str) -> tuple[float, dict[str, object]]:
    start = time.monotonic()
    job = backups.follow(roster, backups.start(roster, vm), lambda _: None)
    return time.monotonic() - start, job


def main() -> None:
    client = engine.ensure_engine(print)
    engine.raise_inotify_limit()
    scale = time_scale()
    rows: list[tuple[str, str, str]] = []
    try:
        roster = labs.up(client, lab_spec(LAB, ("vm1",)), print)
        guest = client.containers.get(roster.guests[0].container)
        for label in ("healthy backup, first (installs the extension)", "healthy backup, again"):
            seconds, job = timed_backup(roster, "vm1")
            azure = f"{seconds * scale / 60:.0f} min of Azure time"
            rows.append((label, f"{seconds:.1f} s ({job['status']})", azure))
        guest.exec_run(["systemctl", "stop", "walinuxagent"])
        seconds, job = timed_backup(roster, "vm1")
        azure = f"sub-task timeout {SNAPSHOT_SUBTASK_TIMEOUT.azure.total_seconds() / 60:.0f} min"
        rows.append(
            ("agent stopped: timed-out backup", f"{seconds:.1f} s ({job['error_code']})", azure)
        )
    finally:
        labs.down(client, LAB)
    print(f"time scale {scale:g} (SNAPLAB_TIME_SCALE)")
    width = max(len(r[0]) for r in rows)
    for label, lab_time, azure in rows:
        print(f"{label:<{width}}  {lab_time:<48}  {azure}")


if __name__ == "__main__":
    main()
