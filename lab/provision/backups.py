"""Start backup jobs on a lab's backup service and follow them to their end.

The job itself runs in the fabric (it survives this process); following it here is
only polling, so Ctrl-C while waiting leaves the job to finish on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from lab.errors import UnknownVm
from lab.platform.roster import Roster
from lab.provision.fabric_client import FabricClient

POLL_SECONDS = 0.5
TERMINAL = ("Completed", "Failed")


def check_vm(roster: Roster, vm: str) -> None:
    if roster.guest_by_name(vm) is None:
        known = ", ".join(g.name for g in roster.guests)
        raise UnknownVm(f"VM {vm!r}: lab {roster.lab!r} has no such VM (it has: {known})")


def start(roster: Roster, vm: str) -> dict[str, Any]:
    check_vm(roster, vm)
    return FabricClient(roster.fabric_ip).start_backup(vm)


def follow(
    roster: Roster, job: dict[str, Any], report: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """Poll a job until it is Completed or Failed, reporting each change."""
    fabric = FabricClient(roster.fabric_ip)
    last: dict[str, Any] | None = None
    while job["status"] not in TERMINAL:
        if job != last:
            report(job)
            last = job
        time.sleep(POLL_SECONDS)
        job = fabric.job(job["job_id"])
    return job


def summary(job: dict[str, Any]) -> str:
    """One line per job, as the portal's Backup jobs blade lists them."""
    subtasks = ", ".join(
        f"{s['name']} {s['status']}" + (f" {s['seconds']:.1f}s" if s.get("seconds") else "")
        for s in job.get("subtasks", [])
    )
    outcome = job["status"]
    if job.get("error_code"):
        outcome += f" {job['error_code']}: {job['error_message']}"
    seconds = f" in {job['seconds']:.1f}s" if job.get("seconds") is not None else ""
    return f"{job['job_id']}  {job['vm']}  {outcome}{seconds}  [{subtasks}]"
