"""The ``without-fix`` lifecycle: prove that a runbook needs the steps it marks ``fix``.

After the scenario's failing backup, the runbook runs with its ``fix`` steps left out,
then a real backup job must run and end ``Failed``. A runbook whose other steps stop
(a check that the fix worked, a wait for *Ready*) is what a runbook without its fix is
expected to do, so that is recorded, not failed: the backup decides. The variant passes
only through :func:`_backup_still_fails`, which fails unless the driver returns a new
job (one no earlier phase saw) that ended ``Failed``.

The repeated backup is the same kind as the one that failed: a job the policy's
schedule starts when the failing one was scheduled (a schedule storm fails only for
the VMs a schedule starts together), otherwise an on-demand job.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from lab.provision import backups
from lab.runner.phases import (
    PHASES,
    Phase,
    PhaseFailed,
    RunContext,
    outcome,
    record_job,
    run_backup,
)

AZURE_DAY = timedelta(days=1)


def _runbook_without_fix(ctx: RunContext) -> str:
    source = ctx.scenario.runbook_ref
    left_out = [s for s in ctx.scenario.steps if s.fix]
    kept = tuple(s for s in ctx.scenario.steps if not s.fix)
    lines = [
        f"{source} without its fix step(s) at "
        + ", ".join(f"line {s.line}" for s in left_out)
        + f": {len(kept)} step(s) left"
    ]
    if kept:
        result = ctx.drivers.run_runbook(
            ctx.need_roster(), replace(ctx.scenario, steps=kept), ctx.cancel
        )
        failed = result.failed
        if failed is not None:
            lines.append(f"the runbook stopped: {failed.failure()} (the backup decides)")
        lines.append(result.transcript(source))
    return "\n".join(lines)


def _backup_still_fails(ctx: RunContext) -> str:
    failing = ctx.record.jobs.get("backup-fails")
    if failing is None:
        raise PhaseFailed("no failing backup to repeat (backup-fails recorded no job)")
    seen = {str(job.get("job_id")) for job in ctx.record.jobs.values()}
    key = "backup-still-fails"
    policy = failing.get("policy") if failing.get("trigger") == "Scheduled" else None
    if policy:
        # The schedule runs once an Azure day: wait for its next run, then follow it.
        limit = AZURE_DAY.total_seconds() / ctx.time_scale + ctx.backup_limit
        job = ctx.drivers.scheduled_backup(
            ctx.need_roster(), ctx.vm, str(policy), frozenset(seen), limit, ctx.cancel
        )
        job = record_job(ctx, key, job, limit)
    else:
        job = run_backup(ctx, key)
    if str(job["job_id"]) in seen:
        raise PhaseFailed(
            f"no new backup job ran: {job['job_id']} is the job an earlier phase saw",
            backups.summary(job),
        )
    if job["status"] != "Failed":
        raise PhaseFailed(
            "without its fix step(s) the runbook still cleared the failure: backup job "
            f"{job['job_id']} {outcome(job)}",
            backups.summary(job),
        )
    return f"without the fix the backup still fails: {backups.summary(job)}"


def _named(name: str) -> Phase:
    return next(p for p in PHASES if p.name == name)


WITHOUT_FIX_PHASES: tuple[Phase, ...] = (
    _named("provision"),
    _named("warmup"),
    _named("inject"),
    _named("backup-fails"),
    Phase("runbook-without-fix", _runbook_without_fix),
    Phase("backup-still-fails", _backup_still_fails),
    _named("teardown"),
)
