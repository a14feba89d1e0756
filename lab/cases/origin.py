"""What a lab was built from, kept in its state folder for ``snaplab case export``.

``case up`` keeps the case itself; ``up --scenario`` keeps the scenario as a case (its
VMs, faults and expected job error as the symptom). The file lives in the lab's state
folder (:mod:`lab.provision.state_dir`), so ``snaplab down`` removes it with the lab. A
lab made by plain ``snaplab up`` has none: export then writes what the lab shows.
"""

from __future__ import annotations

from typing import Any

from lab.cases.load import dump_case, parse_case
from lab.cases.model import (
    BASE_GUEST,
    FORMAT,
    VMSNAPSHOT_LINUX,
    Case,
    CaseFault,
    CaseVm,
    Extension,
    Symptom,
)
from lab.errors import BadInput
from lab.platform.backup.codes import BY_CODE
from lab.provision.images import AGENT_FLAVORS, DEFAULT_AGENT
from lab.provision.state_dir import lab_dir
from lab.scenario import Scenario

CASE_FILE = "case.yaml"


def record_case(lab: str, case: Case) -> None:
    folder = lab_dir(lab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CASE_FILE).write_text(dump_case(case), encoding="utf-8")


def record_scenario(lab: str, scenario: Scenario) -> None:
    record_case(lab, case_from_scenario(scenario))


def recorded(lab: str) -> Case | None:
    """The case the lab was built from, if it keeps one."""
    path = lab_dir(lab) / CASE_FILE
    if not path.is_file():
        return None
    try:
        return parse_case(path.read_text(encoding="utf-8"), str(path))
    except BadInput:
        return None  # written by another snaplab version: export from what the lab shows


def case_from_scenario(scenario: Scenario) -> Case:
    """A catalog scenario as a case: its VMs, faults, warm-up and expected job error."""
    spec = scenario.spec
    primary = scenario.primary_vm
    installed = [Extension(type=VMSNAPSHOT_LINUX)] if spec.warmup_backup else []
    error = BY_CODE[spec.expect.backup_error]
    return Case(
        format=FORMAT,
        name=spec.id,
        description=spec.title,
        vms=[
            CaseVm(
                name=vm.name,
                agent=vm.agent,
                guest=vm.guest or BASE_GUEST,
                extensions=installed if vm.name == primary else [],
            )
            for vm in spec.vms
        ],
        faults=[CaseFault(fault=f.fault, vm=f.vm, params=dict(f.params)) for f in spec.faults],
        symptom=Symptom(vm=primary, error_code=error.code, message=error.message),
    )


def exported_case(lab: str, shown: dict[str, Any]) -> Case:
    """The case of a running lab: what it was built from, with what the lab shows (each
    VM's agent version as its agent reports it); for a lab built without a case or a
    scenario, the VMs the lab shows (base guest assumed: the lab keeps no variant)."""
    built = recorded(lab)
    versions = {
        vm["name"]: vm["agent"].get("version")
        for vm in shown.get("vms", [])
        if vm.get("agent", {}).get("version") in AGENT_FLAVORS
    }
    if built is None:
        vms = [
            CaseVm(name=vm["name"], agent=versions.get(vm["name"]) or DEFAULT_AGENT)
            for vm in shown.get("vms", [])
        ]
        return Case(format=FORMAT, name=lab, vms=vms)
    vms = [vm.model_copy(update={"agent": versions.get(vm.name, vm.agent)}) for vm in built.vms]
    return built.model_copy(update={"vms": vms})
