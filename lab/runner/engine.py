"""Run one scenario's phases in order and record every one of them.

A phase that fails is recorded (status, error, output, seconds), the phases after it are
skipped, the guests' logs are attached, and teardown (the one *final* phase) still runs
unless the keep policy says to leave the lab for a person to look at. A run passes only
if every phase of its lifecycle but the final one passed: a phase that skipped itself
cannot let a run pass without doing its work.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence

from lab.errors import SnaplabError
from lab.journal import PhaseRecord, ScenarioRecord, clip, now
from lab.runner.phases import PHASES, Phase, PhaseFailed, PhaseSkipped, RunContext
from lab.scenario import Scenario

Observer = Callable[[ScenarioRecord, PhaseRecord | None], None]


def new_record(
    scenario: Scenario,
    lab: str,
    phases: Sequence[Phase] = PHASES,
    *,
    item_id: str | None = None,
    variant: str = "catalog",
    time_scale: float | None = None,
) -> ScenarioRecord:
    """An empty record: ``item_id`` is ``<scenario>@<variant>`` for a variant's run."""
    return ScenarioRecord(
        id=item_id or scenario.id,
        title=scenario.spec.title,
        lab=lab,
        phases=[PhaseRecord(p.name) for p in phases],
        scenario=scenario.id,
        variant=variant,
        time_scale=time_scale,
        azure_clock=scenario.spec.fidelity.azure_clock,
    )


def run_scenario(
    ctx: RunContext,
    phases: Sequence[Phase] = PHASES,
    observe: Observer = lambda record, phase: None,
) -> ScenarioRecord:
    """Run every phase in order; after a failure only ``final`` phases run."""
    record = ctx.record
    record.status, record.started_at = "running", now()
    began = time.monotonic()
    observe(record, None)
    stopped_by: str | None = None
    for phase, entry in zip(phases, record.phases, strict=True):
        if stopped_by is None and ctx.cancel.is_set():
            stopped_by = "the run was interrupted"
        if stopped_by is not None and not phase.final:
            entry.status, entry.output = "skipped", f"skipped: {stopped_by}"
            continue
        _run_phase(ctx, phase, entry, observe)
        if entry.status == "failed" and not phase.final:
            stopped_by = f"{phase.name} failed"
            _attach_guest_logs(ctx)
    if stopped_by is None:
        _fail_unfinished(phases, record)
    record.seconds = round(time.monotonic() - began, 3)
    record.finished_at = now()
    if ctx.cancel.is_set():
        record.status = "interrupted"
    else:
        record.status = "failed" if record.failed_phase else "passed"
    observe(record, None)
    return record


def _fail_unfinished(phases: Sequence[Phase], record: ScenarioRecord) -> None:
    """A lifecycle phase that did not pass (it skipped itself) fails the run."""
    for phase, entry in zip(phases, record.phases, strict=True):
        if not phase.final and entry.status != "passed":
            entry.error = f"{phase.name} must pass for the run to pass; it {entry.status}"
            entry.status = "failed"
            return


def _run_phase(ctx: RunContext, phase: Phase, entry: PhaseRecord, observe: Observer) -> None:
    entry.status, entry.started_at = "running", now()
    observe(ctx.record, entry)
    began = time.monotonic()
    try:
        entry.output = clip(phase.run(ctx))
        entry.status = "passed"
    except PhaseSkipped as exc:
        entry.status, entry.output = "skipped", str(exc)
    except PhaseFailed as exc:
        entry.status, entry.error, entry.output = "failed", str(exc), clip(exc.output)
    except SnaplabError as exc:
        entry.status, entry.error = "failed", str(exc)
    except Exception as exc:
        entry.status, entry.error = "failed", f"{type(exc).__name__}: {exc}"
        entry.output = clip(traceback.format_exc())
    except KeyboardInterrupt:
        ctx.cancel.set()
        entry.status, entry.error = "failed", "interrupted (Ctrl-C)"
    entry.seconds = round(time.monotonic() - began, 3)
    observe(ctx.record, entry)


def _attach_guest_logs(ctx: RunContext) -> None:
    if ctx.roster is None:
        return
    for vm in ctx.scenario.spec.vms:
        try:
            ctx.record.guest_logs[vm.name] = ctx.drivers.guest_logs(ctx.roster, vm.name)
        except Exception as exc:
            ctx.record.guest_logs[vm.name] = {"error": f"could not read the logs: {exc}"}
