"""Backup jobs as the vault's job list shows them.

``backup_jobs`` reports the VM's latest finished job. ``concurrent_backups`` is the
schedule-storm rule (Microsoft's cause 4c, newer guidance: no more than 4 VM backups
starting together): the VM's latest job failed on the snapshot sub-task timeout, at
some instant while it ran **more than 4** of the lab's backup jobs were in progress at
once, and at least one *other* job of that crowd failed on the same timeout. Concurrency
is counted from the jobs' own start and end times (a job still running counts until
now), so the rule needs nothing but the job list an engineer sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from checks.context import CheckContext
from checks.result import CheckResult

TIMEOUT_ERROR = "GuestAgentSnapshotTaskStatusError"
MAX_TOGETHER = 4  # Azure's guidance: no more than this many VM backups starting together
TERMINAL = ("Completed", "Failed")

Job = dict[str, Any]


def latest_finished(jobs: Sequence[Job], vm: str) -> Job | None:
    mine = [j for j in jobs if j.get("vm") == vm and j.get("status") in TERMINAL]
    return max(mine, key=lambda j: str(j.get("started_at") or ""), default=None)


def describe(job: Job) -> str:
    text = f"job {str(job.get('job_id', '?'))[:8]} ({job.get('vm')}) {job.get('status')}"
    if job.get("error_code"):
        text += f" {job['error_code']}: {job.get('error_message')}"
    if job.get("seconds") is not None:
        text += f" after {float(job['seconds']):.1f} s"
    return text


def backup_jobs(ctx: CheckContext) -> CheckResult:
    """The VM's latest finished backup job completed."""
    check = "platform.backup_jobs"
    jobs = ctx.platform.jobs()
    job = latest_finished(jobs, ctx.vm)
    running = [j for j in jobs if j.get("vm") == ctx.vm and j.get("status") not in TERMINAL]
    suffix = f"; {len(running)} job(s) in progress" if running else ""
    if job is None:
        return CheckResult.ok(check, f"no finished backup job for {ctx.vm}{suffix}")
    detail = f"latest: {describe(job)}{suffix}"
    if job.get("status") == "Failed":
        return CheckResult.fail(check, detail)
    return CheckResult.ok(check, detail)


def concurrent_backups(ctx: CheckContext) -> CheckResult:
    """Fails when the VM's latest job timed out in a crowd of more than 4 lab backups."""
    check = "platform.concurrent_backups"
    jobs = list(ctx.platform.jobs())
    job = latest_finished(jobs, ctx.vm)
    if job is None:
        return CheckResult.ok(check, f"no finished backup job for {ctx.vm}")
    start = _time(job.get("started_at"))
    if start is None:
        return CheckResult.unobserved(check, f"{describe(job)} has no start time")
    crowd = peak_crowd(jobs, start, _time(job.get("ended_at")) or datetime.now(UTC))
    timed_out = [j for j in crowd if j.get("error_code") == TIMEOUT_ERROR]
    vms = ", ".join(sorted({str(j.get("vm")) for j in crowd}))
    detail = (
        f"at most {len(crowd)} backup job(s) ran at once during {describe(job)} ({vms}); "
        f"{len(timed_out)} of them failed with {TIMEOUT_ERROR}"
    )
    storm = (
        job.get("error_code") == TIMEOUT_ERROR and len(crowd) > MAX_TOGETHER and len(timed_out) >= 2
    )
    if storm:
        return CheckResult.fail(check, f"{detail} (more than {MAX_TOGETHER} together)")
    return CheckResult.ok(check, detail)


def peak_crowd(jobs: Sequence[Job], start: datetime, end: datetime) -> list[Job]:
    """The largest set of jobs running at one instant between ``start`` and ``end``
    (the count only rises when a job starts, so only start times need looking at)."""
    instants = [start] + [
        t for j in jobs if (t := _time(j.get("started_at"))) is not None and start <= t <= end
    ]
    crowds = ([j for j in jobs if _running_at(j, t)] for t in instants)
    return max(crowds, key=len, default=[])


def _running_at(job: Job, moment: datetime) -> bool:
    start = _time(job.get("started_at"))
    end = _time(job.get("ended_at")) or datetime.now(UTC)
    return start is not None and start <= moment <= end


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
