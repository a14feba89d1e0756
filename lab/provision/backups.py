"""Start backup jobs on a lab's backup service and follow them to their end.

The job itself runs in the fabric (it survives this process); following it here is
only polling, so Ctrl-C while waiting leaves the job to finish on its own. Backup
policies live there too: this module sets them (run times on the lab's Azure clock, as
``HH:MM`` or an offset from now) and waits for their scheduled runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from lab.errors import BadInput, PlatformError, UnknownVm
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


def set_policy(roster: Roster, name: str, time_spec: str, vms: tuple[str, ...]) -> dict[str, Any]:
    """Create or change a policy's daily run time, then put ``vms`` on it (in order)."""
    for vm in vms:
        check_vm(roster, vm)
    fabric = FabricClient(roster.fabric_ip)
    run_time = resolve_run_time(time_spec, str(fabric.policies()["azure_now"]))
    fabric.set_policy(name, run_time)
    for vm in vms:
        fabric.protect(vm, name)
    return policy_view(roster, name)


def policy_view(roster: Roster, name: str) -> dict[str, Any]:
    policies = FabricClient(roster.fabric_ip).policies()["policies"]
    found = next((p for p in policies if p["name"] == name), None)
    if found is None:
        raise BadInput(f"lab {roster.lab!r} has no backup policy {name!r}")
    return cast(dict[str, Any], found)


def policy_line(policy: dict[str, Any]) -> str:
    vms = ", ".join(policy["vms"]) or "no VMs"
    return (
        f"{policy['name']:<16} daily at {policy['schedule_run_time']} (Azure clock, UTC)  "
        f"next {policy['next_run']} (in {policy['next_run_in_lab_seconds']:.0f} lab s)  {vms}"
    )


def wait_for_policy_runs(
    roster: Roster,
    names: tuple[str, ...],
    report: Callable[[str], None],
    timeout: float | None = None,
) -> list[dict[str, Any]]:
    """Wait for each named policy's next scheduled run to start and every job it
    started to end; returns those jobs (oldest first).

    The default timeout is the latest next run plus ten minutes of lab time, room for
    any job to reach the snapshot sub-task timeout and its vault transfer.
    """
    fabric = FabricClient(roster.fabric_ip)
    policies = [policy_view(roster, name) for name in names]
    before = {job["job_id"] for job in fabric.jobs()}
    expected = {(p["name"], vm) for p in policies for vm in p["vms"]}
    latest = max((float(p["next_run_in_lab_seconds"]) for p in policies), default=0.0)
    deadline = time.monotonic() + (timeout if timeout is not None else latest + 600.0)
    for policy in policies:
        report(policy_line(policy))
    while True:
        runs = [
            job
            for job in fabric.jobs()
            if job["job_id"] not in before
            and job.get("trigger") == "Scheduled"
            and (job.get("policy"), job["vm"]) in expected
        ]
        started = {(job["policy"], job["vm"]) for job in runs}
        if started >= expected and all(job["status"] in TERMINAL for job in runs):
            return sorted(runs, key=lambda job: str(job["started_at"]))
        if time.monotonic() > deadline:
            missing = ", ".join(f"{vm} ({policy})" for policy, vm in sorted(expected - started))
            raise PlatformError(
                f"policies {', '.join(names)}: scheduled runs not finished in time"
                + (f"; not started: {missing}" if missing else "")
            )
        time.sleep(POLL_SECONDS)
