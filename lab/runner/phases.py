"""The lifecycle as data: named phases, each a small function over a :class:`RunContext`.

A phase returns what it saw (the journal's ``output``) or raises :class:`PhaseFailed`
with what it saw; :class:`PhaseSkipped` says it had nothing to do. The engine
(:mod:`lab.runner.engine`) runs them in order and records each.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lab.errors import LabExists, SnaplabError
from lab.journal import ScenarioRecord
from lab.platform.roster import Roster
from lab.platform.timescale import DEFAULT_TIME_SCALE, time_scale
from lab.provision import backups
from lab.runner.drivers import Drivers
from lab.scenario import Scenario

Keep = Literal["never", "failed", "always"]
KEEP_CHOICES: tuple[Keep, ...] = ("never", "failed", "always")


class PhaseFailed(SnaplabError):
    """A phase's expectation was not met; ``output`` is what it saw."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class PhaseSkipped(Exception):
    """A phase decided it has nothing to do (e.g. teardown of a kept lab)."""


@dataclass
class RunContext:
    """One scenario's run: its lab, its collaborators and what phases learned so far."""

    scenario: Scenario
    lab: str
    drivers: Drivers
    record: ScenarioRecord
    keep: Keep = "never"
    cancel: threading.Event = field(default_factory=threading.Event)
    on_lab_started: Callable[[str], None] = lambda _: None
    on_lab_removed: Callable[[str], None] = lambda _: None
    roster: Roster | None = None
    lab_started: bool = False
    # The lab's Azure-clock factor (the scale=N variant sets its own).
    time_scale: float = field(default_factory=time_scale)
    # What one phase hands a later one (a variant's files, a case), keyed by that variant.
    scratch: dict[str, Any] = field(default_factory=dict)

    @property
    def vm(self) -> str:
        return self.scenario.primary_vm

    @property
    def backup_limit(self) -> float:
        """How long a backup phase may take before the runner gives up, in lab seconds.

        ``limits.backup_seconds`` is written for the default scale; a lab whose Azure clock
        runs slower waits longer for the same Azure timeouts, so it gets that much more.
        """
        stretch = max(1.0, DEFAULT_TIME_SCALE / self.time_scale)
        return self.scenario.spec.limits.backup_seconds * stretch

    def need_roster(self) -> Roster:
        if self.roster is None:
            raise PhaseFailed("the lab was not provisioned")
        return self.roster


@dataclass(frozen=True)
class Phase:
    """A named step of the lifecycle. A ``final`` phase runs even after a failure."""

    name: str
    run: Callable[[RunContext], str]
    final: bool = False


def _provision(ctx: RunContext) -> str:
    ctx.on_lab_started(ctx.lab)
    try:
        ctx.roster = ctx.drivers.up(ctx.lab, ctx.scenario.spec.vms, ctx.time_scale)
    except LabExists:
        # Somebody's lab (a kept one, another run's): never ours to tear down.
        ctx.on_lab_removed(ctx.lab)
        raise
    except BaseException:
        ctx.lab_started = True
        raise
    ctx.lab_started = True
    vms = ", ".join(f"{g.name} (agent {g.agent_version}, {g.ip})" for g in ctx.roster.guests)
    return f"lab {ctx.lab} (time scale {ctx.time_scale:g}): {vms}"


def _warmup(ctx: RunContext) -> str:
    if not ctx.scenario.spec.warmup_backup:
        return "no warm-up backup asked (warmup_backup: false)"
    job = run_backup(ctx, "warmup")
    if job["status"] != "Completed":
        raise PhaseFailed(
            f"the warm-up backup must complete before the fault, it {outcome(job)}",
            backups.summary(job),
        )
    return backups.summary(job)


def _inject(ctx: RunContext) -> str:
    roster = ctx.need_roster()
    lines = []
    for fault in ctx.scenario.spec.faults:
        ctx.drivers.inject(roster, fault.vm, fault.fault, fault.params)
        lines.append(f"{fault.fault} applied to {fault.vm} {json.dumps(fault.params)}")
    return "\n".join(lines)


def _backup_fails(ctx: RunContext) -> str:
    expected = ctx.scenario.spec.expect.backup_error
    job = run_backup(ctx, "backup-fails")
    if job["status"] == "Failed" and job.get("error_code") == expected:
        return backups.summary(job)
    raise PhaseFailed(
        f"expected the backup to fail with {expected}, but it {outcome(job)}",
        backups.summary(job),
    )


def _diagnose(ctx: RunContext) -> str:
    named, output = _diagnosis(ctx, "diagnose")
    expected = sorted(set(ctx.scenario.spec.expect.diagnosis))
    if named != expected:
        missing = [c for c in expected if c not in named]
        extra = [c for c in named if c not in expected]
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not expected {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise PhaseFailed(
            f"the diagnosis named {_ids(named)}, expected exactly {_ids(expected)} ({detail})",
            output,
        )
    return output


def _runbook(ctx: RunContext) -> str:
    result = ctx.drivers.run_runbook(ctx.need_roster(), ctx.scenario, ctx.cancel)
    source = ctx.scenario.runbook_ref
    transcript = result.transcript(source)
    failed = result.failed
    if failed is not None:
        raise PhaseFailed(f"{source}: {failed.failure()}", transcript)
    return transcript


def _backup_completes(ctx: RunContext) -> str:
    job = run_backup(ctx, "backup-completes")
    if job["status"] != "Completed":
        raise PhaseFailed(
            f"expected the backup to complete after the runbook, but it {outcome(job)}",
            backups.summary(job),
        )
    return backups.summary(job)


def _verify(ctx: RunContext) -> str:
    named, output = _diagnosis(ctx, "verify")
    if named:
        raise PhaseFailed(f"after the runbook the diagnosis still names {_ids(named)}", output)
    return output


def _teardown(ctx: RunContext) -> str:
    if not ctx.lab_started:
        raise PhaseSkipped("no lab was started")
    failed = ctx.record.failed_phase is not None
    interrupted = ctx.cancel.is_set()
    keep = ctx.keep == "always" or (ctx.keep == "failed" and failed)
    if keep and ctx.roster is not None and not interrupted:
        ctx.record.kept = True
        raise PhaseSkipped(
            f"lab {ctx.lab} kept (--keep {ctx.keep}); remove it with `snaplab down {ctx.lab}`"
        )
    ctx.drivers.down(ctx.lab)
    ctx.on_lab_removed(ctx.lab)
    return f"lab {ctx.lab} removed"


PHASES: tuple[Phase, ...] = (
    Phase("provision", _provision),
    Phase("warmup", _warmup),
    Phase("inject", _inject),
    Phase("backup-fails", _backup_fails),
    Phase("diagnose", _diagnose),
    Phase("runbook", _runbook),
    Phase("backup-completes", _backup_completes),
    Phase("verify", _verify),
    Phase("teardown", _teardown, final=True),
)
SETUP_PHASES = ("provision", "warmup", "inject")


def run_backup(ctx: RunContext, key: str) -> dict[str, Any]:
    limit = ctx.backup_limit
    job = ctx.drivers.backup(ctx.need_roster(), ctx.vm, limit, ctx.cancel)
    return record_job(ctx, key, job, limit)


def record_job(ctx: RunContext, key: str, job: dict[str, Any], limit: float) -> dict[str, Any]:
    """Keep the job in the journal; a phase fails on a job that never ran or never ended."""
    ctx.record.jobs[key] = job
    if not job.get("job_id") or "status" not in job:
        raise PhaseFailed("no backup job ran", json.dumps(job))
    if job["status"] not in backups.TERMINAL:
        why = "was interrupted" if ctx.cancel.is_set() else f"did not end within {limit:g} s"
        raise PhaseFailed(
            f"backup job {job.get('job_id')} {why} (still {job['status']})",
            backups.summary(job),
        )
    return job


def _diagnosis(ctx: RunContext, key: str) -> tuple[list[str], str]:
    found = ctx.drivers.diagnose(ctx.need_roster(), ctx.vm)
    document = found.to_json()
    if isinstance(document, str):
        document = json.loads(document)
    ctx.record.diagnoses[key] = document
    named = sorted(set(found.cause_ids))
    lines = [f"{ctx.vm}: causes {_ids(named)}"]
    for cause in document.get("causes", []):
        lines.extend(f"  {cause.get('id')}: {evidence}" for evidence in cause.get("evidence", []))
    for check in document.get("checks", []):
        if not check.get("passed"):
            lines.append(f"  check {check.get('id')} failed: {check.get('detail')}")
    return named, "\n".join(lines)


def outcome(job: Mapping[str, Any]) -> str:
    if job["status"] == "Completed":
        return "completed"
    if job["status"] == "Failed":
        return f"failed with {job.get('error_code')}: {job.get('error_message')}"
    return f"ended {job['status']}"


def _ids(ids: Sequence[str]) -> str:
    return f"[{', '.join(ids)}]"
