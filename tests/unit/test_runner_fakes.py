"""Fakes shared by the scenario, runbook and runner tests: a scenario folder writer, a
registered fake fault, and :class:`FakeDrivers` standing in for Docker and the fabric."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.faults import FAULTS, FaultTarget
from lab.platform.roster import GuestEntry, Roster
from lab.runbook import RunbookResult, Step, StepResult
from lab.scenario import Scenario
from lab.scenario_schema import ScenarioFile, VmDecl

SCENARIO_YAML = """\
id: demo
title: A demo failure
cause: Something stops.
fidelity:
  same_as_azure: The same.
  lab_stands_in: Nothing.
vms:
  - name: vm1
    agent: 2.7.3.0
warmup_backup: false
faults:
  - fault: demo-fault
    vm: vm1
    params: {}
expect:
  backup_error: GuestAgentSnapshotTaskStatusError
  diagnosis: [demo]
runbook: runbook.md
limits:
  backup_seconds: 180
"""

RUNBOOK_MD = """\
# Runbook

```bash guest fix
systemctl restart walinuxagent
```
"""


def write_scenario(
    root: Path,
    scenario_id: str = "demo",
    text: str = SCENARIO_YAML,
    runbook: str | None = RUNBOOK_MD,
) -> Path:
    folder = root / scenario_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.yaml").write_text(text)
    if runbook is not None:
        (folder / "runbook.md").write_text(runbook)
    return folder


@dataclass
class FakeFault:
    id: str
    summary: str = "a fake fault"

    def inject(self, target: FaultTarget) -> None:
        return None


@pytest.fixture
def fake_fault(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFault]:
    fault = FakeFault("demo-fault")
    monkeypatch.setitem(FAULTS, fault.id, fault)
    yield fault


def scenario(
    scenario_id: str = "demo",
    *,
    warmup: bool = False,
    expect_error: str = "GuestAgentSnapshotTaskStatusError",
    diagnosis: Sequence[str] = ("demo",),
    vms: Sequence[str] = ("vm1",),
    agent_variants: Sequence[Mapping[str, Any]] = (),
) -> Scenario:
    spec = ScenarioFile.model_validate(
        {
            "id": scenario_id,
            "title": f"{scenario_id} title",
            "cause": "cause",
            "fidelity": {"same_as_azure": "same", "lab_stands_in": "stands in"},
            "vms": [{"name": name, "agent": "2.7.3.0"} for name in vms],
            "warmup_backup": warmup,
            "faults": [{"fault": "demo-fault", "vm": vms[0], "params": {"level": 1}}],
            "expect": {"backup_error": expect_error, "diagnosis": list(diagnosis)},
            "runbook": "runbook.md",
            "limits": {"backup_seconds": 180},
            "agent_variants": [dict(v) for v in agent_variants],
        }
    )
    look = Step(line=3, kind="guest", language="bash", code="true\n")
    fix = Step(line=7, kind="guest", language="bash", code="systemctl start x\n", fix=True)
    return Scenario(spec=spec, folder=Path("/nowhere") / scenario_id, steps=(look, fix))


@dataclass
class FakeDiagnosis:
    cause_ids: tuple[str, ...]
    vm: str = "vm1"

    def to_json(self) -> dict[str, Any]:
        return {
            "vm": self.vm,
            "causes": [
                {"id": c, "evidence": [f"saw {c}"], "runbook": f"scenarios/{c}/runbook.md"}
                for c in self.cause_ids
            ],
            "checks": [{"id": "agent-running", "passed": not self.cause_ids, "detail": "x"}],
        }


def _job(status: str, code: str | None = None) -> dict[str, Any]:
    return {
        "job_id": f"job-{status.lower()}",
        "vm": "vm1",
        "status": status,
        "error_code": code,
        "error_message": "message" if code else None,
        "subtasks": [],
        "seconds": 1.0,
    }


@dataclass
class FakeDrivers:
    """Behaves like a healthy lab whose fault works and whose runbook fixes it (when
    its ``fix`` steps run; the rest only look).

    Each behaviour can be replaced per test; every call is recorded in ``calls``.
    """

    broken: set[str] = field(default_factory=set)
    jobs: list[dict[str, Any]] | None = None
    causes_after_runbook: tuple[str, ...] = ()
    runbook_exit: int = 0
    fail_in: dict[str, BaseException] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    on_backup: Callable[[threading.Event], None] | None = None
    up_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    live_labs: set[str] = field(default_factory=set)
    most_at_once: int = 0
    scales: dict[str, float] = field(default_factory=dict)
    scheduled_jobs: list[dict[str, Any]] = field(default_factory=list)
    steps_run: list[tuple[int, ...]] = field(default_factory=list)
    job_count: int = 0

    def _call(self, name: str, arg: Any) -> None:
        with self.lock:
            self.calls.append((name, arg))
        if name in self.fail_in:
            raise self.fail_in[name]

    def prepare(self, vms: Sequence[VmDecl]) -> None:
        self._call("prepare", tuple(sorted({vm.agent for vm in vms})))

    def up(self, lab: str, vms: Sequence[VmDecl], time_scale: float) -> Roster:
        self._call("up", lab)
        self.scales[lab] = time_scale
        with self.lock:
            self.live_labs.add(lab)
            self.most_at_once = max(self.most_at_once, len(self.live_labs))
        time.sleep(self.up_seconds)
        guests = tuple(
            GuestEntry(vm.name, f"10.0.0.{10 + i}", "02:42:00:00:00:00", vm.agent, f"c-{vm.name}")
            for i, vm in enumerate(vms)
        )
        return Roster(
            lab=lab,
            subnet="10.0.0.0/24",
            fabric_ip="10.0.0.2",
            storage_ip="10.0.0.3",
            guests=guests,
            time_scale=time_scale,
        )

    def down(self, lab: str) -> None:
        self._call("down", lab)
        with self.lock:
            self.live_labs.discard(lab)

    def inject(self, roster: Roster, vm: str, fault: str, params: Mapping[str, Any]) -> None:
        self._call("inject", (vm, fault, dict(params)))
        self.broken.add(roster.lab)

    def backup(
        self, roster: Roster, vm: str, deadline_seconds: float, cancel: threading.Event
    ) -> dict[str, Any]:
        self._call("backup", (roster.lab, deadline_seconds))
        if self.on_backup is not None:
            self.on_backup(cancel)
        if self.jobs:
            return self.jobs.pop(0)
        with self.lock:
            self.job_count += 1
            number = self.job_count
        if roster.lab in self.broken:
            job = _job("Failed", "GuestAgentSnapshotTaskStatusError")
        else:
            job = _job("Completed")
        return {**job, "job_id": f"{job['job_id']}-{number}"}

    def scheduled_backup(
        self,
        roster: Roster,
        vm: str,
        policy: str,
        seen: Collection[str],
        deadline_seconds: float,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        self._call("scheduled_backup", (roster.lab, policy, sorted(seen), deadline_seconds))
        fresh = [j for j in self.scheduled_jobs if j["job_id"] not in seen]
        return fresh[0] if fresh else {}

    def diagnose(self, roster: Roster, vm: str) -> FakeDiagnosis:
        self._call("diagnose", vm)
        if roster.lab in self.broken:
            return FakeDiagnosis(("demo",))
        return FakeDiagnosis(self.causes_after_runbook)

    def run_runbook(
        self, roster: Roster, scenario: Scenario, cancel: threading.Event
    ) -> RunbookResult:
        self._call("run_runbook", scenario.id)
        self.steps_run.append(tuple(s.line for s in scenario.steps))
        result = RunbookResult()
        for step in scenario.steps:
            result.results.append(StepResult(step, self.runbook_exit, "step output\n", 0.1))
            if self.runbook_exit:
                break
        if self.runbook_exit == 0 and any(s.fix for s in scenario.steps):
            self.broken.discard(roster.lab)
        return result

    def guest_logs(self, roster: Roster, vm: str) -> dict[str, str]:
        self._call("guest_logs", vm)
        return {"waagent.log": "agent log tail", "extension.log": "", "journalctl": "unit log"}

    def versions(self) -> dict[str, str]:
        return {"docker": "fake"}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]
