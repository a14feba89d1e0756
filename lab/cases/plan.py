"""What a case asks of a lab, worked out before anything starts: a :class:`Plan`.

Each field of a case maps to the lab's own mechanism for that condition — the one that
really does it (``docs/case-file.md`` has the table). Settings that *are* a catalog
fault's condition become that fault (``waagent_conf: {Extensions.Enabled: n}`` is
extensions-disabled, ``agent_service: stopped`` is agent-stopped, ``dhcp: false`` is
dhcp-disabled, ...); other settings are written as an administrator would (waagent.conf
lines, a proxy, NSG rules through the lab's Microsoft.Network, a policy through its vault).
A fault named both by a setting and in ``faults:`` is applied once (the ``faults:``
entry's parameters win). Faults run in one order, whatever order the file lists them in:
changes that restart the agent before those that stop it, the power last — otherwise one
fault would undo or refuse another.

What the lab cannot honour is never dropped silently: it is a :attr:`Plan.notes` line,
printed by ``case up`` and ``case run``.

Pure: no Docker, no I/O; :mod:`lab.cases.build` carries a plan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lab.cases.model import BASE_GUEST, LAB_VM_SIZE, VMSNAPSHOT_LINUX, Case, CaseVm
from lab.platform.proxy import PROXY_HOST, PROXY_PORT
from lab.provision.spec import vm_option

# Catalog faults in the order they are applied. Ids not listed come after, as written.
FAULT_ORDER = (
    "extensions-disabled",
    "extension-update-failed",
    "broken-extension",
    "prescript-hang",
    "blocked-egress",
    "blocked-egress-proxy",
    "schedule-storm",
    "dhcp-disabled",
    "cpu-saturation",
    "memory-pressure",
    "agent-stopped",
    "stale-agent",
    "power-state-stale",
    "guest-shutdown",
)
# Faults that act on an installed VMSnapshot handler: the VM gets a warm-up backup first.
NEEDS_HANDLER = ("broken-extension", "extension-update-failed")
LAB_PROXY_URL = f"http://{PROXY_HOST}:{PROXY_PORT}"

StepKind = Literal["warmup", "waagent-conf", "proxy", "nsg-rule", "policy", "fault"]


@dataclass(frozen=True)
class Step:
    """One change to the lab; ``origin`` is the case field path it realises."""

    kind: StepKind
    origin: str
    vm: str | None = None
    fault: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" on {self.vm}" if self.vm else ""
        if self.kind == "fault":
            return f"{self.origin}: fault {self.fault}{where}"
        return f"{self.origin}: {self.kind}{where}"


@dataclass(frozen=True)
class Plan:
    lab: str
    vm_options: tuple[str, ...]  # ``--vm`` texts, as lab.provision.spec.parse_vm reads them
    steps: tuple[Step, ...]
    notes: tuple[str, ...]  # fields recorded but not honoured, one line each

    @property
    def faults(self) -> list[tuple[str, str]]:
        return [(s.fault or "", s.vm or "") for s in self.steps if s.kind == "fault"]


def default_lab_name(case: Case) -> str:
    """The case's name, cut to the 20 characters a lab name may have."""
    return case.name[:20].rstrip("-")


def plan_case(case: Case, lab: str | None = None) -> Plan:
    """Work out the lab for ``case`` (its name ``lab``, default from the case's name)."""
    notes: list[str] = []
    config: list[Step] = []
    faults: dict[tuple[str, str], Step] = {}
    warmup: dict[str, str] = {}
    for index, vm in enumerate(case.vms):
        loc = f"vms[{index}]"
        config.extend(_vm_config(vm, loc, notes))
        for step in _vm_faults(vm, loc, notes, warmup):
            faults.setdefault((step.fault or "", vm.name), step)
    for index, rule in enumerate(case.nsg.rules):
        loc = f"nsg.rules[{index}]"
        if rule.direction == "Inbound":
            notes.append(f"{loc}: an inbound rule is recorded in the NSG, not enforced")
        for name in [rule.vm] if rule.vm else [v.name for v in case.vms]:
            config.append(Step("nsg-rule", loc, name, params=rule.model_dump(exclude={"vm"})))
    policy = case.backup.policy
    if policy is not None:
        members = list(policy.vms) if policy.vms is not None else [v.name for v in case.vms]
        config.append(
            Step("policy", "backup.policy", params={**policy.model_dump(), "vms": members})
        )
    for index, fault in enumerate(case.faults):
        step = Step("fault", f"faults[{index}]", fault.vm, fault.fault, dict(fault.params))
        key = (fault.fault, fault.vm)
        if key in faults:
            merged = {**faults[key].params, **fault.params}
            step = Step(
                "fault", f"{faults[key].origin} and faults[{index}]", fault.vm, fault.fault, merged
            )
        faults[key] = step
        if fault.fault in NEEDS_HANDLER:
            warmup.setdefault(fault.vm, f"faults[{index}]")
    ordered = sorted(faults.values(), key=_rank)
    warmups = [Step("warmup", origin, vm) for vm, origin in warmup.items()]
    options = tuple(
        vm_option(vm.name, vm.agent, None if vm.guest == BASE_GUEST else vm.guest)
        for vm in case.vms
    )
    return Plan(
        lab=lab or default_lab_name(case),
        vm_options=options,
        steps=(*warmups, *config, *ordered),
        notes=tuple(notes),
    )


def _rank(step: Step) -> int:
    fault = step.fault or ""
    return FAULT_ORDER.index(fault) if fault in FAULT_ORDER else len(FAULT_ORDER)


def _vm_config(vm: CaseVm, loc: str, notes: list[str]) -> list[Step]:
    steps = []
    if vm.size != LAB_VM_SIZE:
        notes.append(
            f"{loc}.size: {vm.size} is recorded; the lab's guests are {LAB_VM_SIZE} (1 vCPU, 1 GiB)"
        )
    settings = {k: v for k, v in vm.waagent_conf.items() if k != "Extensions.Enabled"}
    if vm.waagent_conf.get("Extensions.Enabled", "y") not in ("y", "n"):
        settings["Extensions.Enabled"] = vm.waagent_conf["Extensions.Enabled"]
    if settings:
        steps.append(Step("waagent-conf", f"{loc}.waagent_conf", vm.name, params=settings))
    if vm.proxy is not None:
        if vm.proxy.http.rstrip("/") != LAB_PROXY_URL:
            notes.append(
                f"{loc}.proxy.http: the lab's proxy {LAB_PROXY_URL} stands in for {vm.proxy.http}"
            )
        steps.append(Step("proxy", f"{loc}.proxy", vm.name, params={"where": vm.proxy.where}))
    return steps


def _vm_faults(vm: CaseVm, loc: str, notes: list[str], warmup: dict[str, str]) -> list[Step]:
    def fault(origin: str, fault_id: str, **params: Any) -> Step:
        return Step("fault", f"{loc}.{origin}", vm.name, fault_id, params)

    found: list[Step] = []
    if vm.waagent_conf.get("Extensions.Enabled") == "n":
        found.append(fault("waagent_conf.Extensions.Enabled", "extensions-disabled"))
    for index, extension in enumerate(vm.extensions):
        where = f"{loc}.extensions[{index}]"
        if extension.type.lower() != VMSNAPSHOT_LINUX.lower():
            notes.append(
                f"{where}: {extension.type} is recorded; the lab has only "
                f"{VMSNAPSHOT_LINUX}'s handler"
            )
            continue
        if extension.version is not None:
            notes.append(
                f"{where}.version: {extension.version} is recorded; the lab's "
                "platform offers its own versions and the agent takes the newest"
            )
        if extension.status_code is not None:
            notes.append(
                f"{where}.status_code: {extension.status_code} is recorded; the "
                "lab's backup makes its own"
            )
        state = extension.handler_state
        if state != "not-installed":
            warmup.setdefault(vm.name, f"{where}.handler_state")
        if state in ("failed", "files-unreadable"):
            found.append(fault(f"extensions[{index}].handler_state", "broken-extension"))
        elif state == "update-failed":
            found.append(fault(f"extensions[{index}].handler_state", "extension-update-failed"))
    script = vm.prepost_script
    if script.hangs:
        params = {
            key: value
            for key, value in (
                ("timeout_seconds", script.timeout_seconds),
                ("continue_on_failure", script.continue_on_failure),
            )
            if value is not None
        }
        found.append(fault("prepost_script.hangs", "prescript-hang", **params))
    elif script.timeout_seconds is not None or script.continue_on_failure is not None:
        notes.append(f"{loc}.prepost_script: a script that does not hang is recorded, not built")
    if not vm.dhcp:
        found.append(fault("dhcp", "dhcp-disabled"))
    if vm.load.cpu_busy:
        found.append(fault("load.cpu_busy", "cpu-saturation"))
    if vm.load.memory_free_mib is not None:
        found.append(
            fault("load.memory_free_mib", "memory-pressure", headroom_mib=vm.load.memory_free_mib)
        )
    if vm.agent_service == "stopped":
        found.append(fault("agent_service", "agent-stopped"))
    elif vm.agent_service == "crashed":
        found.append(fault("agent_service", "stale-agent"))
    if vm.power == "shut-down-inside-unseen":
        found.append(fault("power", "power-state-stale"))
    if vm.power != "running":
        found.append(fault("power", "guest-shutdown"))
    return found
