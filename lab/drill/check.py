"""``snaplab drill check TRAINEE``: a real backup and the diagnosis decide "fixed".

Fixed means what a customer would accept: the on-demand backup completes, and the
checks find no cause left (a backup that completes while the cause is still there, such
as a stopped agent that a later backup would trip on again, is "not yet"). The answer
never names a cause: it says fixed or not yet, and for a failed backup the job's error
code and message, which the trainee's portal shows anyway.

The backup and checks run outside the drill's lock (they take a while); only recording
the attempt takes it. A check asked for after the time limit is refused and recorded as
late: the board is frozen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker

from lab.drill import engines as drill_engines
from lab.drill.start import symptom_limit
from lab.drill.state import locked, parse_iso
from lab.errors import BadInput
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.runner.drivers import DockerDrivers, Drivers
from lab.scenario import load_scenario

SCHEDULED = "Scheduled"
AZURE_DAY_S = 86_400.0  # a daily policy runs again within one Azure day


@dataclass(frozen=True)
class CheckResult:
    trainee: str
    attempt: int
    fixed: bool
    late: bool = False
    job_status: str = ""
    error_code: str = ""
    error_message: str = ""
    seconds: float = 0.0
    elapsed_s: float | None = None
    # For the trainer's and the runner's eyes only; line() never shows it.
    causes_left: tuple[str, ...] = ()

    def line(self) -> str:
        """What the trainee reads: fixed or not yet, never the cause."""
        if self.late:
            return f"{self.trainee}: time is up, the check was not run (recorded as late)"
        if self.fixed:
            return f"{self.trainee}: fixed (attempt {self.attempt}, {_clock(self.elapsed_s)})"
        if self.job_status == "Completed":
            why = "the backup completed, but what broke it is still there"
        elif self.error_code:
            why = f"the backup failed: {self.error_code}: {self.error_message}"
        else:
            why = f"the backup did not finish ({self.job_status or 'no job'})"
        return f"{self.trainee}: not yet (attempt {self.attempt}): {why}"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "no time limit"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d} after the start"


def judge(job: dict[str, Any], cause_ids: list[str]) -> bool:
    return job.get("status") == "Completed" and not cause_ids


def next_scheduled(roster: Roster, vm: str, seconds: float) -> dict[str, Any]:
    """The VM's next job a policy's schedule starts (any policy: the fix may have moved
    the VM to another), followed to its end; ``{}`` if none starts in time."""
    fabric = FabricClient(roster.fabric_ip)
    deadline = time.monotonic() + seconds
    seen = {job["job_id"] for job in fabric.jobs(vm)}
    while time.monotonic() < deadline:
        fresh = [
            job
            for job in fabric.jobs(vm)
            if job["job_id"] not in seen and job.get("trigger") == SCHEDULED
        ]
        if fresh:
            job = min(fresh, key=lambda j: str(j.get("started_at")))
            while job["status"] not in backups.TERMINAL and time.monotonic() < deadline:
                time.sleep(backups.POLL_SECONDS)
                job = fabric.job(job["job_id"])
            return job
        time.sleep(backups.POLL_SECONDS)
    return {}


def run_check(
    client: docker.DockerClient,
    name: str,
    trainee_id: str,
    drivers: Drivers | None = None,
    scheduled: Callable[[Roster, str, float], dict[str, Any]] = next_scheduled,
    report: Callable[[str], None] = lambda _: None,
) -> CheckResult:
    """Run one check for a trainee and record it.

    The check repeats the kind of backup that failed: an on-demand one, or, when the
    symptom came from a policy's schedule (a schedule storm), the VM's next scheduled
    run, which may be up to an Azure day away (minutes on the lab's clock).
    """
    with locked(name) as state:
        if state.ended_at is not None:
            raise BadInput(f"drill {name!r} has ended")
        trainee = state.trainee(trainee_id)
        state.freeze_if_due()
        if state.frozen_at is not None:
            trainee.record("check", late=True)
            return CheckResult(trainee_id, trainee.attempts, fixed=False, late=True)
    client = drill_engines.client_for(client, trainee)
    drivers = drivers or DockerDrivers(client)
    scenario = load_scenario(trainee.scenario)
    roster = labs.roster_of(client, trainee.lab)
    began = time.monotonic()
    limit = symptom_limit(scenario)
    if trainee.symptom_job.get("trigger") == SCHEDULED:
        report(f"{trainee_id}: waiting for the VM's next scheduled backup")
        job = scheduled(roster, trainee.vm, AZURE_DAY_S / roster.time_scale + limit)
    else:
        job = drivers.backup(roster, trainee.vm, limit, threading.Event())
    causes = sorted(set(drivers.diagnose(roster, trainee.vm).cause_ids))
    fixed = judge(job, causes)
    seconds = round(time.monotonic() - began, 1)
    with locked(name) as state:
        trainee = state.trainee(trainee_id)
        # A check that began before the limit counts, even if it ends after it.
        attempt = trainee.attempts + 1
        event = trainee.record(
            "check",
            attempt=attempt,
            fixed=fixed,
            job_id=job.get("job_id"),
            job_status=job.get("status"),
            error_code=job.get("error_code"),
            causes_left=len(causes),
            seconds=seconds,
        )
        elapsed = (parse_iso(event.at) - parse_iso(state.started_at)).total_seconds()
        if fixed and trainee.fixed_at is None:
            trainee.record("fixed", at=event.at, attempt=attempt, elapsed_s=elapsed)
        state.freeze_if_due()
    return CheckResult(
        trainee=trainee_id,
        attempt=attempt,
        fixed=fixed,
        job_status=str(job.get("status", "")),
        error_code=str(job.get("error_code") or ""),
        error_message=str(job.get("error_message") or ""),
        seconds=seconds,
        elapsed_s=elapsed,
        causes_left=tuple(causes),
    )
