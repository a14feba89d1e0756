"""Realise a case as a lab (``snaplab case up``), and run its backup (``case run``).

A :class:`~lab.cases.plan.Plan` is carried out with the lab's existing mechanisms: the
lab spec for VMs (agent, guest variant), the fault registry for catalog faults, the
guest's console (``docker exec`` as root, as faults do) for ``waagent.conf`` lines and
the proxy, the lab's Microsoft.Network (``azure-mgmt-network``, :mod:`lab.nsg_api`) for
NSG rules, and its vault (``azure-mgmt-recoveryservicesbackup``,
:class:`~lab.provision.vault.LabVault`) for the policy — what ``snaplab nsg`` and
``snaplab policy`` do. If any step fails (or Ctrl-C), the lab is removed and the failure
raised: nothing is left running. The case is kept in the lab's state folder
(:mod:`lab.cases.origin`) for ``case export``.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
from azure.mgmt.network.models import SecurityRule, SecurityRulePropertiesFormat

from lab import nsg_api
from lab.cases import origin
from lab.cases.compare import Comparison, compare
from lab.cases.load import load_case
from lab.cases.model import Case, Symptom
from lab.cases.plan import Plan, Step, plan_case
from lab.errors import BadInput, LabExists, SnaplabError
from lab.faults import FaultTarget, fault_by_id, known_fault_ids
from lab.faults.agent_stopped import FIND_AGENT_UNIT
from lab.faults.blocked_egress_proxy import _ORGANISATION_PROXY, proxy_answers
from lab.faults.extensions_disabled import wait_for_report_since
from lab.platform.proxy import PROXY_HOST, PROXY_PORT
from lab.platform.roster import Roster
from lab.platform.timescale import DEFAULT_TIME_SCALE
from lab.provision import lab as labs
from lab.provision.spec import lab_spec
from lab.provision.vault import LabVault
from lab.runner.drivers import DockerDrivers

Report = Callable[[str], None]
# How long a case's backup may take, in lab seconds at the default scale: the snapshot
# sub-task timeout (23.75 s), the host's snapshot work and the vault copy, with room
# for a loaded machine (scenarios give 120-180 s).
BACKUP_SECONDS = 240.0

# Sets keys of /etc/waagent.conf from a JSON object on stdin: the line if it is there
# (uncommented), else a new one at the end; as an administrator's editor would.
_SET_CONF = r"""
import json, re, sys
path = "/etc/waagent.conf"
wanted = json.load(sys.stdin)
lines = open(path).read().splitlines()
for key, value in wanted.items():
    pattern = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    hits = [i for i, line in enumerate(lines) if pattern.match(line)]
    for i in hits:
        lines[i] = f"{key}={value}"
    if not hits:
        lines.append(f"{key}={value}")
open(path, "w").write("\n".join(lines) + "\n")
"""

_RESTART_AGENT = (
    FIND_AGENT_UNIT
    + """
systemctl restart "$agent_unit"
for i in $(seq 1 100); do
    pgrep -f 'waagent -run-exthandlers' >/dev/null && exit 0
    sleep 0.2
done
echo "the agent did not come back after 'systemctl restart $agent_unit'" >&2
exit 1
"""
)


class CaseBuildFailed(SnaplabError):
    """A case could not be built; its lab has been removed."""


@dataclass(frozen=True)
class Built:
    """A case's lab, running: the plan it was built from and its roster."""

    plan: Plan
    roster: Roster


def load_buildable(path: Path) -> Case:
    """A case file, validated with the catalog's fault ids too: what ``case up`` builds."""
    return load_case(path, known_fault_ids())


def build_case(client: docker.DockerClient, case: Case, lab: str | None, report: Report) -> Built:
    """``snaplab case up``: the case's lab, built and left running."""
    plan = plan_case(case, lab)
    spec = lab_spec(plan.lab, plan.vm_options)  # validates the lab name and VMs first
    if plan.lab in labs.lab_names(client):
        raise LabExists(f"--lab {plan.lab!r}: a lab with this name already exists")
    report(f"bringing up lab {plan.lab} ({len(spec.vms)} VM(s))")
    roster = labs.up(client, spec, report)  # removes what it made on failure
    try:
        origin.record_case(plan.lab, case)
        for step in plan.steps:
            report(step.describe())
            try:
                _apply(client, roster, step)
            except Exception as exc:  # a Docker or SDK error too: one line, lab removed
                raise CaseBuildFailed(
                    f"case {case.name}: {step.describe()} failed: {exc} (lab {plan.lab} removed)"
                ) from exc
    except BaseException:
        report(f"removing lab {plan.lab}")
        labs.down(client, plan.lab)
        raise
    return Built(plan, roster)


@dataclass(frozen=True)
class CaseRun:
    """A case run: the lab it built, the backup job, the verdict, whether the lab stays."""

    built: Built
    job: dict[str, Any]
    comparison: Comparison
    kept: bool

    def to_json(self) -> dict[str, Any]:
        return {
            **self.comparison.to_json(),
            "lab": self.built.plan.lab,
            "kept": self.kept,
            "not_honoured": list(self.built.plan.notes),
        }


def run_case(
    client: docker.DockerClient, case: Case, lab: str | None, report: Report, keep: bool
) -> CaseRun:
    """``snaplab case run``: build, back up the symptom's VM, compare, tear down."""
    symptom = require_symptom(case)
    built = build_case(client, case, lab, report)
    try:
        vm = case.symptom_vm
        report(f"backing up {vm}")
        job = _backup(client, built.roster, vm)
        report(f"backup job {job.get('job_id')}: {job.get('status')} {job.get('error_code') or ''}")
        comparison = compare(symptom, job)
    finally:
        if not keep:
            report(f"removing lab {built.plan.lab}")
            labs.down(client, built.plan.lab)
    return CaseRun(built, job, comparison, keep)


def require_symptom(case: Case) -> Symptom:
    """``case run`` needs a symptom to compare with: refused before anything starts."""
    if case.symptom is None:
        raise BadInput(
            f"case {case.name}: symptom: `case run` compares the backup with the symptom, "
            "and the case has none"
        )
    return case.symptom


def _backup(client: docker.DockerClient, roster: Roster, vm: str) -> dict[str, Any]:
    stretch = max(1.0, DEFAULT_TIME_SCALE / roster.time_scale)
    job = DockerDrivers(client).backup(roster, vm, BACKUP_SECONDS * stretch, threading.Event())
    if job.get("status") not in ("Completed", "Failed"):
        raise CaseBuildFailed(
            f"{vm}: backup job {job.get('job_id')} did not end within "
            f"{BACKUP_SECONDS * stretch:g} s (still {job.get('status')})"
        )
    return job


def _apply(client: docker.DockerClient, roster: Roster, step: Step) -> None:
    vm = step.vm or ""
    target = FaultTarget(client, roster, vm, dict(step.params))
    if step.kind == "fault":
        fault_by_id(step.fault or "").inject(target)
    elif step.kind == "warmup":
        job = _backup(client, roster, vm)
        if job["status"] != "Completed":
            raise CaseBuildFailed(
                f"the warm-up backup (which installs the VMSnapshot handler) must complete, "
                f"it failed with {job.get('error_code')}: {job.get('error_message')}"
            )
    elif step.kind == "waagent-conf":
        _set_waagent_conf(target, {str(k): str(v) for k, v in step.params.items()})
    elif step.kind == "proxy":
        if not proxy_answers(target):
            raise CaseBuildFailed(f"lab {roster.lab!r} has no HTTP proxy answering")
        if step.params["where"] == "system":
            target.run(_ORGANISATION_PROXY)
        else:
            _set_waagent_conf(
                target, {"HttpProxy.Host": PROXY_HOST, "HttpProxy.Port": str(PROXY_PORT)}
            )
    elif step.kind == "nsg-rule":
        _put_rule(client, roster.lab, vm, step.params)
    elif step.kind == "policy":
        params = step.params
        LabVault.of(client, roster.lab).set_policy(params["name"], params["time"], params["vms"])


def _set_waagent_conf(target: FaultTarget, settings: dict[str, str]) -> None:
    """Write the lines, restart the agent, return once the restarted agent has reported."""
    restarted = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    payload = shlex.quote(json.dumps(settings))
    target.run(f"set -e\nprintf %s {payload} | python3 -c {shlex.quote(_SET_CONF)}\n")
    target.run(_RESTART_AGENT)
    wait_for_report_since(target, restarted)


def _put_rule(client: docker.DockerClient, lab: str, vm: str, rule: dict[str, Any]) -> None:
    network, group = nsg_api.connect(client, lab)
    where = nsg_api.find(network, group, vm)
    body = SecurityRule(
        properties=SecurityRulePropertiesFormat(
            protocol=rule["protocol"],
            source_address_prefix=rule["source"],
            source_port_range="*",
            destination_address_prefix=rule["destination"],
            destination_port_range=rule["ports"],
            access=rule["access"],
            priority=rule["priority"],
            direction=rule["direction"],
        )
    )
    nsg_api.put(where, rule["name"], body)
