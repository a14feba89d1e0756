"""Start backup jobs on a lab's backup service and follow them to their end.

The job itself runs in the fabric (it survives this process); following it here is
only polling, so Ctrl-C while waiting leaves the job to finish on its own. The runner
uses it; the ``snaplab`` backup commands go through the lab's vault instead
(:mod:`lab.provision.vault`). A policy run time given as an offset from the lab's
Azure clock is resolved here for the fabric's own callers (the schedule-storm fault).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from lab.errors import BadInput, UnknownVm
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


def current_or_start(roster: Roster, vm: str) -> dict[str, Any]:
    """The VM's backup job in progress, if there is one, else a new on-demand job.

    When a policy's schedule has already started the VM's backup (a schedule storm),
    "Backup now" would only be refused as another operation in progress: the job that
    tells what is wrong is the one that runs.
    """
    check_vm(roster, vm)
    fabric = FabricClient(roster.fabric_ip)
    running = [j for j in fabric.jobs(vm) if j["status"] not in TERMINAL]
    return running[0] if running else fabric.start_backup(vm)


# ---------------------------------------------------------------------- policies

_RUN_TIME = re.compile(r"^\d{1,2}:\d{2}$")
_OFFSET = re.compile(r"^\+(\d+)([mh])$")


def resolve_run_time(spec: str, azure_now: str) -> str:
    """A policy run time from ``HH:MM`` or ``+<N>m`` / ``+<N>h`` (that long after the
    lab's Azure clock now, rounded up to the next full minute)."""
    text = spec.strip()
    if _RUN_TIME.match(text):
        return text.zfill(5)
    offset = _OFFSET.match(text)
    if offset is None:
        raise BadInput(f"--time {spec!r}: expected HH:MM or an offset such as +15m or +2h")
    amount, unit = int(offset.group(1)), offset.group(2)
    now = datetime.fromisoformat(azure_now.replace("Z", "+00:00"))
    moment = now + (timedelta(hours=amount) if unit == "h" else timedelta(minutes=amount))
    if moment.second or moment.microsecond:
        moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return moment.strftime("%H:%M")
