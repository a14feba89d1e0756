"""Backup jobs as the vault's job list shows them.

``backup_jobs`` reports the VM's latest finished job. ``concurrent_backups`` is the
schedule-storm rule (Microsoft's cause 4c: many VMs backed up at the same time; the
newer scale guidance says no more than 4 VM backups should start together). It looks
for the trace a busy host leaves in the job list, without knowing how many snapshots a
host takes at once: the VM's latest job ended on the snapshot sub-task timeout, other
VMs' jobs were running with it, and while it waited the platform *completed* some of
those others. A platform that finishes other VMs' snapshots while this VM's status never
comes back was busy with them; one such timeout is enough evidence, and a job that ran
alone never is. It reads nothing but what an engineer sees in the vault's job list
(start and end times, status, error code, trigger and policy); whether the VM itself
was healthy (agent Ready, nothing wrong in the guest) is for the diagnosis rules to
weigh with the other checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from checks.context import CheckContext
from checks.result import CheckResult

TIMEOUT_ERROR = "GuestAgentSnapshotTaskStatusError"
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
    """Fails when the VM's latest job timed out while the platform completed other VMs'
    backups that ran with it."""
    check = "platform.concurrent_backups"
    jobs = list(ctx.platform.jobs())
    job = latest_finished(jobs, ctx.vm)
    if job is None:
        return CheckResult.ok(check, f"no finished backup job for {ctx.vm}")
    start, end = _time(job.get("started_at")), _time(job.get("ended_at"))
    if start is None or end is None:
        return CheckResult.unobserved(check, f"{describe(job)} has no start or end time")
    together = ran_with(jobs, job, start, end)
    if not together:
        return CheckResult.ok(check, f"{describe(job)}: no other backup job ran with it")
    served = completed_during(together, start, end)
    timed_out = [j for j in together if j.get("error_code") == TIMEOUT_ERROR]
    detail = (
        f"{describe(job)}; {len(together)} other backup job(s) ran with it "
        f"({_crowd(together)}): {len(served)} completed while it waited"
        f"{_vm_list(served)}, {len(timed_out)} timed out as well{_vm_list(timed_out)}"
    )
    if job.get("error_code") == TIMEOUT_ERROR and served:
        return CheckResult.fail(
            check, f"{detail}: the platform finished other VMs' snapshots while this one waited"
        )
    return CheckResult.ok(check, detail)


def ran_with(jobs: Sequence[Job], job: Job, start: datetime, end: datetime) -> list[Job]:
    """Other VMs' jobs that were running at some moment between ``start`` and ``end``
    (a job still running counts until now)."""
    return [
        other
        for other in jobs
        if other.get("vm") != job.get("vm")
        and (other_start := _time(other.get("started_at"))) is not None
        and other_start <= end
        and (_time(other.get("ended_at")) or datetime.now(UTC)) >= start
    ]


def completed_during(jobs: Sequence[Job], start: datetime, end: datetime) -> list[Job]:
    """The jobs that completed between ``start`` and ``end``."""
    return [
        j
        for j in jobs
        if j.get("status") == "Completed"
        and (done := _time(j.get("ended_at"))) is not None
        and start <= done <= end
    ]


def _crowd(jobs: Sequence[Job]) -> str:
    """How the crowd was started: by which policies' schedules, or on demand."""
    policies = sorted({str(j["policy"]) for j in jobs if j.get("policy")})
    on_demand = sum(1 for j in jobs if not j.get("policy"))
    parts = [f"policy {', '.join(policies)}"] if policies else []
    if on_demand:
        parts.append(f"{on_demand} on demand")
    return "; ".join(parts)


def _vm_list(jobs: Sequence[Job]) -> str:
    if not jobs:
        return ""
    shown = ", ".join(
        f"{j.get('vm')} {float(j['seconds']):.1f} s"
        if j.get("seconds") is not None
        else str(j.get("vm"))
        for j in sorted(jobs, key=lambda j: str(j.get("ended_at") or ""))
    )
    return f" ({shown})"


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
