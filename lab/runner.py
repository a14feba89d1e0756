"""Run scenarios through their lifecycle, one lab each, and record every phase.

The lifecycle is data: :data:`PHASES`, an ordered table of named phases, each a small
function over a :class:`RunContext`. The engine runs them in order; a phase that fails
is recorded (status, error, output, seconds), the phases after it are skipped, the
guests' logs are attached, and teardown (the one *final* phase) still runs unless the
keep policy says to leave the lab for a person to look at.

Everything outside the process (Docker, the fabric, faults, the diagnosis) is reached
through :class:`Drivers`, so the engine is tested with fakes and run with
:class:`DockerDrivers`. Several scenarios run at once in threads (``--parallel``); the
first Ctrl-C stops them at the next phase boundary and tears every lab down, a second
one removes the labs at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import docker

import lab
from lab.errors import BadInput, LabExists, SnaplabError
from lab.faults import FaultTarget, fault_by_id
from lab.journal import Journal, PhaseRecord, ScenarioRecord, clip, now, run_input
from lab.platform.roster import Roster
from lab.platform.timescale import time_scale
from lab.provision import backups, images
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.lab import ArmEndpoint
from lab.provision.labels import LAB_NAME_PATTERN
from lab.provision.spec import lab_spec
from lab.runbook import RunbookResult, StepPlace, platform_env, run_steps
from lab.scenario import Scenario
from lab.scenario_schema import VmDecl

Keep = Literal["never", "failed", "always"]
KEEP_CHOICES: tuple[Keep, ...] = ("never", "failed", "always")
DEFAULT_LAB_PREFIX = "run"
LAB_PREFIX_MAX = 10
POLL_SECONDS = 0.5
GUEST_LOG_LINES = 100
Report = Callable[[str], None]
Observer = Callable[[ScenarioRecord, PhaseRecord | None], None]


class ScenarioFailed(SnaplabError):
    """A scenario could not be set up (``up --scenario``); its lab has been removed."""


class Diagnosis(Protocol):
    """What the runner reads of :func:`lab.diagnosis.diagnose`'s answer."""

    @property
    def cause_ids(self) -> Iterable[str]: ...

    def to_json(self) -> Any: ...


class Drivers(Protocol):
    """Everything a scenario run asks of the outside world."""

    def prepare(self, agent_versions: Sequence[str]) -> None:
        """Make what every lab of the run needs (images) once, before labs start."""

    def up(self, lab: str, vms: Sequence[VmDecl]) -> Roster:
        """Bring up a lab with these VMs and return when every agent is Ready."""

    def down(self, lab: str) -> None:
        """Remove the lab completely (a lab that is not there is not an error)."""

    def inject(self, roster: Roster, vm: str, fault: str, params: Mapping[str, Any]) -> None:
        """Apply one registered fault to one VM."""

    def backup(
        self, roster: Roster, vm: str, deadline_seconds: float, cancel: threading.Event
    ) -> dict[str, Any]:
        """Start a backup job and follow it; return it at its end, deadline or cancel."""

    def diagnose(self, roster: Roster, vm: str) -> Diagnosis:
        """Run the checks against one VM and name the causes found."""

    def run_runbook(
        self, roster: Roster, scenario: Scenario, cancel: threading.Event
    ) -> RunbookResult:
        """Execute the scenario's runbook steps in its lab."""

    def guest_logs(self, roster: Roster, vm: str) -> dict[str, str]:
        """The tails of the guest's agent and extension logs."""

    def versions(self) -> dict[str, str]:
        """Versions of outside components worth recording in the journal."""


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

    @property
    def vm(self) -> str:
        return self.scenario.primary_vm

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
        ctx.roster = ctx.drivers.up(ctx.lab, ctx.scenario.spec.vms)
    except LabExists:
        # Somebody's lab (a kept one, another run's): never ours to tear down.
        ctx.on_lab_removed(ctx.lab)
        raise
    except BaseException:
        ctx.lab_started = True
        raise
    ctx.lab_started = True
    vms = ", ".join(f"{g.name} (agent {g.agent_version}, {g.ip})" for g in ctx.roster.guests)
    return f"lab {ctx.lab}: {vms}"


def _warmup(ctx: RunContext) -> str:
    if not ctx.scenario.spec.warmup_backup:
        return "no warm-up backup asked (warmup_backup: false)"
    job = _backup(ctx, "warmup")
    if job["status"] != "Completed":
        raise PhaseFailed(
            f"the warm-up backup must complete before the fault, it {_outcome(job)}",
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
    job = _backup(ctx, "backup-fails")
    if job["status"] == "Failed" and job.get("error_code") == expected:
        return backups.summary(job)
    raise PhaseFailed(
        f"expected the backup to fail with {expected}, but it {_outcome(job)}",
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
    job = _backup(ctx, "backup-completes")
    if job["status"] != "Completed":
        raise PhaseFailed(
            f"expected the backup to complete after the runbook, but it {_outcome(job)}",
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


def _backup(ctx: RunContext, key: str) -> dict[str, Any]:
    limit = ctx.scenario.spec.limits.backup_seconds
    job = ctx.drivers.backup(ctx.need_roster(), ctx.vm, limit, ctx.cancel)
    ctx.record.jobs[key] = job
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


def _outcome(job: Mapping[str, Any]) -> str:
    if job["status"] == "Completed":
        return "completed"
    if job["status"] == "Failed":
        return f"failed with {job.get('error_code')}: {job.get('error_message')}"
    return f"ended {job['status']}"


def _ids(ids: Sequence[str]) -> str:
    return f"[{', '.join(ids)}]"


def new_record(scenario: Scenario, lab: str, phases: Sequence[Phase] = PHASES) -> ScenarioRecord:
    return ScenarioRecord(
        id=scenario.id,
        title=scenario.spec.title,
        lab=lab,
        phases=[PhaseRecord(p.name) for p in phases],
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
    record.seconds = round(time.monotonic() - began, 3)
    record.finished_at = now()
    if ctx.cancel.is_set():
        record.status = "interrupted"
    else:
        record.status = "failed" if record.failed_phase else "passed"
    observe(record, None)
    return record


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


def lab_name(prefix: str, scenario_id: str) -> str:
    """``<prefix>-<id>``, shortened with a stable hash when it exceeds the lab-name rule."""
    name = f"{prefix}-{scenario_id}"
    if LAB_NAME_PATTERN.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:5]
    head = name[: 20 - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def check_lab_prefix(prefix: str) -> str:
    if not LAB_NAME_PATTERN.match(prefix) or len(prefix) > LAB_PREFIX_MAX:
        raise BadInput(
            f"--lab-prefix {prefix!r}: lowercase letters, digits and '-', starting with a "
            f"letter, at most {LAB_PREFIX_MAX} characters"
        )
    return prefix


@dataclass(frozen=True)
class RunOptions:
    keep: Keep = "never"
    parallel: int = 1
    lab_prefix: str = DEFAULT_LAB_PREFIX


class _LiveLabs:
    """Labs started and not yet removed: what a second Ctrl-C must remove at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labs: set[str] = set()

    def add(self, lab: str) -> None:
        with self._lock:
            self._labs.add(lab)

    def discard(self, lab: str) -> None:
        with self._lock:
            self._labs.discard(lab)

    def snapshot(self) -> list[str]:
        with self._lock:
            return sorted(self._labs)


def run_catalog(
    scenarios: Sequence[Scenario],
    drivers: Drivers,
    options: RunOptions = RunOptions(),
    observe: Observer = lambda record, phase: None,
    cancel: threading.Event | None = None,
) -> Journal:
    """Run scenarios, ``options.parallel`` at a time, and return the run's journal.

    Ctrl-C (in the calling thread) stops every scenario at its next phase boundary and
    tears its lab down; the journal then says ``interrupted``. A second Ctrl-C removes
    every lab still up and lets the interrupt through.
    """
    stop = cancel or threading.Event()
    names = [lab_name(options.lab_prefix, s.id) for s in scenarios]
    journal = Journal(
        input=run_input(
            [s.id for s in scenarios],
            {"keep": options.keep, "parallel": options.parallel, "lab_prefix": options.lab_prefix},
            time_scale(),
            **drivers.versions(),
        ),
        scenarios=[new_record(s, n) for s, n in zip(scenarios, names, strict=True)],
    )
    began = time.monotonic()
    drivers.prepare(sorted({vm.agent for s in scenarios for vm in s.spec.vms}))
    live = _LiveLabs()
    work: queue.SimpleQueue[tuple[Scenario, ScenarioRecord]] = queue.SimpleQueue()
    for item in zip(scenarios, journal.scenarios, strict=True):
        work.put(item)

    count = max(1, min(options.parallel, len(scenarios)))
    remaining = [count]
    remaining_lock = threading.Lock()
    finished = threading.Event()

    def worker() -> None:
        try:
            _work()
        finally:
            with remaining_lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    finished.set()

    def _work() -> None:
        while True:
            try:
                scenario, record = work.get_nowait()
            except queue.Empty:
                return
            if stop.is_set():
                _not_run(record)
                observe(record, None)
                continue
            ctx = RunContext(
                scenario=scenario,
                lab=record.lab,
                drivers=drivers,
                record=record,
                keep=options.keep,
                cancel=stop,
                on_lab_started=live.add,
                on_lab_removed=live.discard,
            )
            run_scenario(ctx, observe=observe)

    for i in range(count):
        threading.Thread(target=worker, name=f"snaplab-run-{i}", daemon=True).start()
    try:
        _wait(finished)
    except KeyboardInterrupt:
        stop.set()
        try:
            _wait(finished)
        except KeyboardInterrupt:
            for name in live.snapshot():
                # Removing the other labs matters more than one that will not go.
                with contextlib.suppress(Exception):
                    drivers.down(name)
            raise
    journal.finished_at = now()
    journal.seconds = time.monotonic() - began
    return journal


def _wait(finished: threading.Event) -> None:
    """Wait in short slices, so Ctrl-C reaches this (the main) thread promptly.

    Not ``Thread.join``: on Python 3.11 a KeyboardInterrupt inside ``join`` can mark a
    still-running thread as stopped, and the run would end while a lab is still up.
    """
    while not finished.wait(0.2):
        pass


def _not_run(record: ScenarioRecord) -> None:
    record.status = "interrupted"
    for entry in record.phases:
        entry.status, entry.output = "skipped", "skipped: the run was interrupted"


def prepare_lab(drivers: Drivers, scenario: Scenario, lab: str, report: Report) -> Roster:
    """Provision, warm up and inject, leaving the lab running for a person to work in.

    On any failure (or Ctrl-C) the lab is removed and the failure is raised.
    """
    phases = [p for p in PHASES if p.name in SETUP_PHASES]
    record = new_record(scenario, lab, phases)
    ctx = RunContext(scenario=scenario, lab=lab, drivers=drivers, record=record)
    messages = {
        "provision": f"bringing up lab {lab} ({len(scenario.spec.vms)} VM(s))",
        "warmup": "running the warm-up backup",
        "inject": "breaking the scenario's VM(s)",
    }
    for phase, entry in zip(phases, record.phases, strict=True):
        if phase.name == "warmup" and not scenario.spec.warmup_backup:
            continue
        report(messages[phase.name])
        _run_phase(ctx, phase, entry, lambda record, phase: None)
        if entry.status == "failed":
            if ctx.lab_started:
                report(f"removing lab {lab}")
                drivers.down(lab)
            if ctx.cancel.is_set():
                raise KeyboardInterrupt
            raise ScenarioFailed(
                f"scenario {scenario.id}: {phase.name} failed: {entry.error}"
                + (f" (lab {lab} removed)" if ctx.lab_started else "")
            )
    return ctx.need_roster()


def provision_scenario(
    client: docker.DockerClient, scenario: Scenario, lab: str, report: Report
) -> Roster:
    """``snaplab up --scenario``: the scenario's lab, broken and left running."""
    lab_spec(lab, tuple(f"{vm.name}:agent={vm.agent}" for vm in scenario.spec.vms))
    if lab in labs.lab_names(client):
        raise LabExists(f"--lab {lab!r}: a lab with this name already exists")
    drivers = DockerDrivers(client, report)
    drivers.prepare(sorted({vm.agent for vm in scenario.spec.vms}))
    return prepare_lab(drivers, scenario, lab, report)


def apply_fault(
    client: docker.DockerClient,
    lab_name: str | None,
    vm: str,
    fault_id: str,
    params: Mapping[str, Any],
) -> tuple[str, str]:
    """``snaplab inject``: one fault on one VM of a running lab; returns (lab, summary)."""
    fault = fault_by_id(fault_id)
    name = labs.resolve_lab(client, lab_name)
    roster = labs.roster_of(client, name)
    backups.check_vm(roster, vm)
    fault.inject(FaultTarget(client, roster, vm, dict(params)))
    return name, fault.summary


class DockerDrivers:
    """The real collaborators: Docker labs, the fabric's backup service, the fault
    registry, :mod:`lab.diagnosis`, and runbook steps run with ``docker exec``."""

    def __init__(self, client: docker.DockerClient, report: Report = lambda _: None) -> None:
        self.client = client
        self.report = report

    def prepare(self, agent_versions: Sequence[str]) -> None:
        for recipe in images.all_recipes(tuple(agent_versions)):
            images.ensure_image(self.client, recipe, self.report)

    def up(self, lab: str, vms: Sequence[VmDecl]) -> Roster:
        spec = lab_spec(lab, tuple(f"{vm.name}:agent={vm.agent}" for vm in vms))
        return labs.up(self.client, spec, lambda _: None)

    def down(self, lab: str) -> None:
        labs.down(self.client, lab)

    def inject(self, roster: Roster, vm: str, fault: str, params: Mapping[str, Any]) -> None:
        fault_by_id(fault).inject(FaultTarget(self.client, roster, vm, dict(params)))

    def backup(
        self, roster: Roster, vm: str, deadline_seconds: float, cancel: threading.Event
    ) -> dict[str, Any]:
        job = backups.current_or_start(roster, vm)
        fabric = FabricClient(roster.fabric_ip)
        deadline = time.monotonic() + deadline_seconds
        while job["status"] not in backups.TERMINAL:
            if cancel.is_set() or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
            job = fabric.job(job["job_id"])
        return job

    def diagnose(self, roster: Roster, vm: str) -> Diagnosis:
        # Imported by name: the diagnosis package is developed beside the runner, and a
        # run without it should fail its diagnose phase, not every command at import.
        module = importlib.import_module("lab.diagnosis")
        found: Diagnosis = module.diagnose(self.client, roster, vm)
        return found

    def run_runbook(
        self, roster: Roster, scenario: Scenario, cancel: threading.Event
    ) -> RunbookResult:
        arm = labs.arm_endpoint(self.client, roster.lab)
        place = StepPlace(
            containers={g.name: g.container for g in roster.guests},
            default_vm=scenario.primary_vm,
            platform_env=platform_env(env_exports(arm), roster.lab, scenario.primary_vm),
            cwd=repo_root(),
        )
        return run_steps(scenario.steps, place, cancel=cancel)

    def guest_logs(self, roster: Roster, vm: str) -> dict[str, str]:
        target = FaultTarget(self.client, roster, vm)
        scripts = {
            "waagent.log": f"tail -n {GUEST_LOG_LINES} /var/log/waagent.log",
            "extension.log": "shopt -s globstar nullglob; "
            "for f in /var/log/azure/**/extension.log; "
            f'do echo "== $f"; tail -n {GUEST_LOG_LINES} "$f"; done',
            "journalctl -u walinuxagent": "journalctl -u walinuxagent --no-pager "
            f"-n {GUEST_LOG_LINES}",
        }
        logs = {}
        for name, script in scripts.items():
            try:
                logs[name] = target.run(script + " 2>&1 || true", timeout=30)
            except SnaplabError as exc:
                logs[name] = f"could not read: {exc}"
        return logs

    def versions(self) -> dict[str, str]:
        try:
            return {"docker": str(self.client.version().get("Version", "unknown"))}
        except Exception:
            return {"docker": "unknown"}


def env_exports(arm: ArmEndpoint) -> dict[str, str]:
    """What ``snaplab env`` exports: the Azure SDK pointed at the lab's ARM twin."""
    return {
        "SNAPLAB_ARM_ENDPOINT": arm.url,
        "AZURE_SUBSCRIPTION_ID": arm.subscription_id,
        "SNAPLAB_RESOURCE_GROUP": arm.resource_group,
        "SNAPLAB_ARM_TOKEN": arm.token,
        "REQUESTS_CA_BUNDLE": arm.ca_file,
        "SSL_CERT_FILE": arm.ca_file,
    }


def repo_root() -> Path:
    """Where platform steps run: the checkout that holds the package and scenarios/."""
    return Path(lab.__file__).resolve().parent.parent
