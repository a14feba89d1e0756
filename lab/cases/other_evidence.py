"""The customer's other evidence: what a support engineer adds to a case a bundle cannot carry.

A guest's log bundle shows the guest's files. Some causes live elsewhere — an NSG rule,
a policy that starts every VM at once, a CPU that is busy now, a VM shut down from
inside — and from a bundle alone their diagnosis stays *undecided*. An engineer then asks
the customer for the platform's view and a few shell commands, and adds what they show
to the case. This module is that step, made from a running lab as the customer would
give it (never from a scenario file or the fault that broke the lab):

- ``nsg.rules``: the NSG's own (non-default) rules, as ``az network nsg rule list``
  gives them (``azure-mgmt-network``);
- ``backup.policy`` and the other VMs on it: ``az backup item list`` /
  ``az backup policy show`` (``azure-mgmt-recoveryservicesbackup``), each other VM's agent
  version from its compute instance view (``az vm get-instance-view``), the VMs whose
  last scheduled job completed (``az backup job list``) listed first;
- ``load``: ``top -bn1`` and ``free -m`` pasted from the guest's shell (over the lab's
  SSH), judged with the in-guest load check's own limits;
- ``power``: the instance view's power state, and whether the guest answers at all;
- a proxy the guest's ``/etc/environment`` sets (``cat /etc/environment``), which the
  agent's files do not show;
- the application-consistency script settings (``timeoutInSeconds``,
  ``continueBackupOnFailure`` of ``/etc/azure/VMSnapshotScriptPluginConfig.json``), which
  decide whether a hung pre-script fails the backup or lets it go on.

Each added field gets an ``evidence`` entry naming its source (``platform: ...`` or
``guest: ...``). The parsers are pure and take the text or SDK objects the customer's
tools give; :func:`gather` reads them from a lab.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from checks.in_guest.load import MEMORY_LIMIT, RUN_QUEUE_LIMIT

if TYPE_CHECKING:
    import docker
    from azure.mgmt.network.models import SecurityRule

    from lab.platform.roster import Roster

NSG_SOURCE = "platform: az network nsg rule list"
ITEMS_SOURCE = "platform: az backup item list"
POLICY_SOURCE = "platform: az backup policy show"
JOBS_SOURCE = "platform: az backup job list"
INSTANCE_SOURCE = "platform: az vm get-instance-view"
TOP_SOURCE = "guest: top -bn1"
FREE_SOURCE = "guest: free -m"
ENVIRONMENT_SOURCE = "guest: cat /etc/environment"
ANSWER_SOURCE = "guest: ssh (does the VM answer)"
SSH_SECONDS = 30.0
# What the customer pastes: one command after the other, each under a header line. The
# lab's VM size is its cgroup's limits (the stand-in for a VM size), so the engineer asks
# for them too (cgroup v2's file, else v1's): on an Azure VM ``free -m`` and ``nproc``
# already show the VM's own memory and CPUs.
CG = "/sys/fs/cgroup"
# Microsoft's guide for application-consistent Linux backups: the pre/post script
# configuration the engineer asks for when the extension reports a script failure.
SCRIPT_CONFIG = "/etc/azure/VMSnapshotScriptPluginConfig.json"
SCRIPT_SOURCE = f"guest: sudo cat {SCRIPT_CONFIG}"
SCRIPT_KEYS = {
    "timeout_seconds": "timeoutInSeconds",
    "continue_on_failure": "continueBackupOnFailure",
}
# Memory use is sampled once a second for this many seconds and the highest kept, as the
# in-guest memory check keeps the peak working set: a process the OOM killer keeps
# killing and restarting (the agent) shows low use at any one instant.
MEMORY_SAMPLES = 8
GUEST_COMMANDS = (
    "echo '### top -bn1'; top -bn1 | head -n 5; "
    "echo '### nproc'; nproc; "
    f"echo '### cpu.max'; cat {CG}/cpu.max 2>/dev/null || "
    f"echo $(cat {CG}/cpu/cpu.cfs_quota_us {CG}/cpu/cpu.cfs_period_us 2>/dev/null); "
    "echo '### free -m'; free -m; "
    f"echo '### memory.max'; cat {CG}/memory.max 2>/dev/null || "
    f"cat {CG}/memory/memory.limit_in_bytes 2>/dev/null; "
    f"echo '### memory.current'; for i in $(seq {MEMORY_SAMPLES}); do "
    f"cat {CG}/memory.current 2>/dev/null || cat {CG}/memory/memory.usage_in_bytes 2>/dev/null; "
    "sleep 1; done; "
    f"echo '### memory.stat'; grep -h '^inactive_file ' {CG}/memory.stat 2>/dev/null || "
    f"grep -h '^total_inactive_file ' {CG}/memory/memory.stat 2>/dev/null; "
    "echo '### /etc/environment'; cat /etc/environment 2>/dev/null; "
    f"echo '### {SCRIPT_CONFIG}'; sudo -n cat {SCRIPT_CONFIG} 2>/dev/null; true"
)
MiB = 1024 * 1024

_TASKS = re.compile(r"^Tasks:\s*\d+\s+total,\s*(\d+)\s+running", re.MULTILINE)
_MEM = re.compile(r"^Mem:\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\d+\s+(\d+)", re.MULTILINE)
_PROXY = re.compile(r"^\s*(?:export\s+)?(?:http_proxy|HTTP_PROXY)\s*=\s*[\"']?([^\"'\s]+)")


@dataclass
class OtherEvidence:
    """Fields to add to a case (by dotted path under the first VM or the case), with their
    sources; ``notes`` says what could not be read."""

    nsg_rules: list[dict[str, Any]] = field(default_factory=list)
    policy: dict[str, Any] | None = None
    other_vms: list[dict[str, Any]] = field(default_factory=list)
    vm_fields: dict[str, Any] = field(default_factory=dict)  # "load.cpu_busy" -> True
    evidence: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def apply(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` (a case as plain data, its first VM the bundle's) with these added."""
        out = dict(document)
        vms = [dict(vm) for vm in out["vms"]]
        first = vms[0]
        kept = first.get("proxy")  # the agent's own proxy (waagent.conf) is what it uses
        for path, value in self.vm_fields.items():
            if path == "proxy" and kept:
                continue
            target = first
            *parents, leaf = path.split(".")
            for parent in parents:
                target[parent] = dict(target.get(parent) or {})
                target = target[parent]
            target[leaf] = value
        known = {vm["name"] for vm in vms}
        vms.extend(vm for vm in self.other_vms if vm["name"] not in known)
        out["vms"] = vms
        if self.nsg_rules:
            out["nsg"] = {"rules": list(self.nsg_rules)}
        if self.policy is not None:
            out["backup"] = {"policy": dict(self.policy)}
        evidence = dict(out.get("evidence") or {})
        for path, source in self.evidence.items():
            if path == "vms[0].proxy" and kept:
                continue
            evidence[path] = source
        out["evidence"] = evidence
        return out


# ---------------------------------------------------------------------- parsers (pure)


def nsg_rules_from(rules: list[SecurityRule]) -> list[dict[str, Any]]:
    """The NSG's own rules (``az network nsg rule list``) as case ``nsg.rules`` entries."""
    from lab import nsg_api

    out = []
    for rule in rules:
        props = rule.properties
        if props is None or not rule.name:
            continue
        out.append(
            {
                "name": rule.name,
                "direction": nsg_api.word(props.direction),
                "access": nsg_api.word(props.access),
                "priority": int(props.priority or 0),
                "protocol": nsg_api.word(props.protocol or "*"),
                "source": nsg_api.source(rule),
                "destination": nsg_api.destination(rule),
                "ports": nsg_api.destination_ports(rule),
            }
        )
    return out


def policy_of(vm: str, policies: dict[str, Any]) -> dict[str, Any] | None:
    """The policy ``vm`` is on, from the vault's policies with their members (as
    ``az backup item list`` and ``az backup policy show`` give them): name, run time, VMs."""
    for policy in policies.get("policies", []):
        members = list(policy.get("vms") or [])
        if vm in members and policy.get("schedule_run_time"):
            return {"name": policy["name"], "time": policy["schedule_run_time"], "vms": members}
    return None


def queue_order(members: list[str], jobs: list[dict[str, Any]]) -> tuple[list[str], str]:
    """The policy's VMs, those whose last scheduled job completed first (``az backup job
    list``): when one run starts more VMs than the host has snapshot slots, the VMs that
    got a slot are the ones whose jobs went through, so in the case they join the policy
    (and the host's queue) first. Otherwise the order stays. Also a line of what the job
    list showed."""
    last: dict[str, str] = {}
    for job in jobs:  # newest first
        if job.get("trigger") == "Scheduled" and job.get("vm") in members:
            last.setdefault(str(job["vm"]), str(job.get("status")))
    through = [m for m in members if last.get(m) == "Completed"]
    order = through + [m for m in members if m not in through]
    seen = ", ".join(f"{m} {last[m]}" for m in members if m in last)
    return order, seen


def sections(text: str) -> dict[str, str]:
    """The pasted output, split at its ``### command`` header lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = found.setdefault(line[4:].strip(), [])
        elif current is not None:
            current.append(line)
    return {key: "\n".join(lines) for key, lines in found.items()}


def cpu_capacity(nproc: str, cpu_max: str) -> float:
    """CPUs the VM may use: its cgroup quota (``quota period``, from v2's ``cpu.max`` or
    v1's ``cpu.cfs_quota_us``/``cpu.cfs_period_us``) or ``nproc``."""
    words = cpu_max.split()
    if len(words) == 2 and words[0] != "max":  # v1: "-1 100000" is no quota
        try:
            quota, period = int(words[0]), int(words[1])
        except ValueError:
            quota, period = 0, 0
        if quota > 0 and period > 0:
            return quota / period
    try:
        return float(int(nproc.strip() or "1"))
    except ValueError:
        return 1.0


def cpu_busy(top: str, capacity: float) -> tuple[bool, str] | None:
    """``top -bn1``'s header judged by the in-guest CPU check's run-queue limit: more
    running tasks per CPU than :data:`RUN_QUEUE_LIMIT`. Only the task count: in the lab,
    top's ``%Cpu(s)`` line is the whole host's, not the VM's. None when top printed no
    ``Tasks:`` line."""
    tasks = _TASKS.search(top)
    if tasks is None:
        return None
    running = int(tasks.group(1))
    per_cpu = running / capacity
    detail = f"{running} running task(s) for {capacity:g} CPU(s)"
    if per_cpu > RUN_QUEUE_LIMIT:
        return True, f"{detail} (above {RUN_QUEUE_LIMIT:g} per CPU)"
    return False, detail


def memory_free_mib(free: str, limit: str, current: str, inactive: str) -> tuple[int, str] | None:
    """What the VM has left, when it is low (the in-guest memory check's
    :data:`MEMORY_LIMIT` share of the VM's memory in use): ``free -m``'s ``available``,
    or, where the cgroup limit is the VM's memory (the lab), limit minus the working set
    (the highest of the ``current`` usage samples, one a line, less inactive file cache).
    None when memory is not low or not readable."""
    total_mib: float | None = None
    used_mib: float | None = None
    try:
        if limit.strip() and limit.strip() != "max" and current.strip():
            words = inactive.split()
            cache = int(words[1]) if len(words) == 2 else 0
            total_mib = int(limit) / MiB
            used_mib = (max(int(line) for line in current.split()) - cache) / MiB
    except ValueError:
        total_mib = None
    if total_mib is None:
        match = _MEM.search(free)
        if match is None:
            return None
        total_mib = float(match.group(1))
        used_mib = total_mib - float(match.group(4))
    if used_mib is None or total_mib <= 0:
        return None
    share = used_mib / total_mib
    left = max(0, int(total_mib - used_mib))
    detail = f"{used_mib:.0f} MiB of {total_mib:.0f} MiB in use ({share:.0%}), {left} MiB left"
    if share < MEMORY_LIMIT:
        return None
    return left, detail


def system_proxy(environment: str) -> str | None:
    """The ``http_proxy`` an ``/etc/environment`` sets (the agent's unit does not read it)."""
    for line in environment.splitlines():
        match = _PROXY.match(line)
        if match:
            return match.group(1)
    return None


def script_settings(text: str) -> dict[str, Any]:
    """``timeout_seconds`` and ``continue_on_failure`` from the script plugin's JSON
    configuration (what it sets of them; nothing for text that is not that JSON)."""
    try:
        config = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(config, dict):
        return {}
    found: dict[str, Any] = {}
    timeout = config.get("timeoutInSeconds")
    if isinstance(timeout, str) and timeout.strip().isdigit():
        timeout = int(timeout)
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
        found["timeout_seconds"] = timeout
    going_on = config.get("continueBackupOnFailure")
    if isinstance(going_on, str) and going_on.lower() in ("true", "false"):
        going_on = going_on.lower() == "true"
    if isinstance(going_on, bool):
        found["continue_on_failure"] = going_on
    return found


def power_from(power_state: str | None, answers: bool) -> str | None:
    """The case's ``power``: a guest that does not answer while the platform shows it
    stopped was shut down inside; while the platform still shows it running, the platform
    has not seen the shutdown. None for a VM that answers."""
    if answers:
        return None
    if power_state is not None and power_state.lower().endswith("/stopped"):
        return "shut-down-inside"
    return "shut-down-inside-unseen"


# ---------------------------------------------------------------------- from a lab


def gather(client: docker.DockerClient, roster: Roster, vm: str) -> OtherEvidence:
    """The customer's other evidence about ``vm`` from the running lab (see the module)."""
    found = OtherEvidence()
    _nsg(client, roster.lab, vm, found)
    instance = _instance_views(client, roster)
    _policy(client, roster, vm, instance, found)
    answers = _guest(roster, vm, found)
    power = power_from(instance.get(vm, {}).get("power"), answers)
    if power is not None:
        found.vm_fields["power"] = power
        found.evidence["vms[0].power"] = (
            f"{INSTANCE_SOURCE}: {instance.get(vm, {}).get('power') or 'no power state'}; "
            f"{ANSWER_SOURCE}: no answer"
        )
    return found


def _nsg(client: docker.DockerClient, lab: str, vm: str, found: OtherEvidence) -> None:
    from lab import nsg_api

    network, group = nsg_api.connect(client, lab)
    where = nsg_api.find(network, group, vm)
    found.nsg_rules = nsg_rules_from(nsg_api.rules(where))
    for index, rule in enumerate(nsg_api.rules(where)):
        found.evidence[f"nsg.rules[{index}]"] = f"{NSG_SOURCE}: {nsg_api.describe(rule)}"


def _instance_views(client: docker.DockerClient, roster: Roster) -> dict[str, dict[str, Any]]:
    from lab.azure_sdk import compute_client
    from lab.provision import lab as labs

    arm = labs.arm_endpoint(client, roster.lab)
    compute = compute_client(arm.url, arm.token, arm.subscription_id, arm.ca_file)
    views: dict[str, dict[str, Any]] = {}
    for guest in roster.guests:
        view = compute.virtual_machines.instance_view(arm.resource_group, guest.name)
        power = next(
            (s.code for s in view.statuses or [] if (s.code or "").startswith("PowerState/")),
            None,
        )
        agent = view.vm_agent.vm_agent_version if view.vm_agent is not None else None
        views[guest.name] = {"power": power, "agent": agent}
    return views


def _policy(
    client: docker.DockerClient,
    roster: Roster,
    vm: str,
    instance: dict[str, dict[str, Any]],
    found: OtherEvidence,
) -> None:
    from lab.provision.vault import LabVault

    vault = LabVault.of(client, roster.lab)
    policy = policy_of(vm, vault.policies())
    if policy is None:
        return
    order, seen = queue_order(policy["vms"], vault.jobs())
    policy["vms"] = order
    found.policy = policy
    found.evidence["backup.policy"] = (
        f"{POLICY_SOURCE}: {policy['name']} daily at {policy['time']} UTC; "
        f"{ITEMS_SOURCE}: {', '.join(policy['vms'])}"
        + (f"; {JOBS_SOURCE} (last scheduled run): {seen}" if seen else "")
    )
    lab_agents = {g.name: g.agent_version for g in roster.guests}
    for name in policy["vms"]:
        if name == vm:
            continue
        reported = instance.get(name, {}).get("agent")
        agent = reported if reported in _agent_versions() else lab_agents.get(name)
        index = len(found.other_vms) + 1
        found.other_vms.append({"name": name, "agent": agent})
        found.evidence[f"vms[{index}].agent"] = (
            f"{INSTANCE_SOURCE} {name}: vmAgent.vmAgentVersion {reported or 'not reported'}"
        )


def _agent_versions() -> tuple[str, ...]:
    from lab.provision.images import AGENT_FLAVORS

    return tuple(AGENT_FLAVORS)


def _guest(roster: Roster, vm: str, found: OtherEvidence) -> bool:
    """Run the commands the engineer asks for; whether the guest answered."""
    from lab.provision.ssh_client import target_for

    target = target_for(roster, vm)
    try:
        done = subprocess.run(
            target.argv([GUEST_COMMANDS], batch=True),
            capture_output=True,
            text=True,
            timeout=SSH_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        found.notes.append(f"{vm}: no answer over SSH within {SSH_SECONDS:g} s")
        return False
    if done.returncode != 0:
        found.notes.append(f"{vm}: ssh exit {done.returncode}: {done.stderr.strip()[-200:]}")
        return False
    read_guest_output(done.stdout, found)
    return True


def read_guest_output(text: str, found: OtherEvidence) -> None:
    """Add what the pasted output shows (CPU, memory, a system proxy) to ``found``."""
    parts = sections(text)
    capacity = cpu_capacity(parts.get("nproc", ""), parts.get("cpu.max", ""))
    busy = cpu_busy(parts.get("top -bn1", ""), capacity)
    if busy is not None and busy[0]:
        found.vm_fields["load.cpu_busy"] = True
        found.evidence["vms[0].load.cpu_busy"] = f"{TOP_SOURCE}: {busy[1]}"
    memory = memory_free_mib(
        parts.get("free -m", ""),
        parts.get("memory.max", ""),
        parts.get("memory.current", ""),
        parts.get("memory.stat", ""),
    )
    if memory is not None:
        found.vm_fields["load.memory_free_mib"] = memory[0]
        found.evidence["vms[0].load.memory_free_mib"] = f"{FREE_SOURCE}: {memory[1]}"
    for key, value in script_settings(parts.get(SCRIPT_CONFIG, "")).items():
        found.vm_fields[f"prepost_script.{key}"] = value
        name = SCRIPT_KEYS[key]
        found.evidence[f"vms[0].prepost_script.{key}"] = f"{SCRIPT_SOURCE}: {name} {value}"
    proxy = system_proxy(parts.get("/etc/environment", ""))
    if proxy is not None:
        found.vm_fields["proxy"] = {"http": proxy, "where": "system"}
        found.evidence["vms[0].proxy"] = f"{ENVIRONMENT_SOURCE}: http_proxy={proxy}"
