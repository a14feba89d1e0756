"""Labs for people: ``up --scenario`` (a drill, broken and left running) and ``inject``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker

from lab.cases.origin import record_scenario
from lab.errors import LabExists, SnaplabError
from lab.faults import FaultTarget, fault_by_id
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.spec import lab_spec, vm_option
from lab.runner.drivers import DockerDrivers, Drivers, Report
from lab.runner.engine import _run_phase, new_record
from lab.runner.phases import PHASES, SETUP_PHASES, Phase, RunContext
from lab.scenario import Scenario


class ScenarioFailed(SnaplabError):
    """A scenario could not be set up (``up --scenario``); its lab has been removed."""


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
    try:
        _run_setup_phases(ctx, phases, messages, report)
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM (lab.signals) between two phases: the lab goes too.
        if ctx.lab_started:
            drivers.down(lab)
        raise
    return ctx.need_roster()


def _run_setup_phases(
    ctx: RunContext, phases: list[Phase], messages: dict[str, str], report: Report
) -> None:
    scenario, lab, drivers = ctx.scenario, ctx.lab, ctx.drivers
    for phase, entry in zip(phases, ctx.record.phases, strict=True):
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


def provision_scenario(
    client: docker.DockerClient, scenario: Scenario, lab: str, report: Report
) -> Roster:
    """``snaplab up --scenario``: the scenario's lab, broken and left running."""
    lab_spec(lab, tuple(vm_option(vm.name, vm.agent, vm.guest) for vm in scenario.spec.vms))
    if lab in labs.lab_names(client):
        raise LabExists(f"--lab {lab!r}: a lab with this name already exists")
    drivers = DockerDrivers(client, report)
    drivers.prepare(scenario.spec.vms)
    roster = prepare_lab(drivers, scenario, lab, report)
    record_scenario(lab, scenario)  # what `snaplab case export` writes back
    return roster


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
