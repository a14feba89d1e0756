"""The customer's other evidence: parsers over what their tools print, and how it joins a case.

Also the round-trip variant's bundle verdict: the scenario's cause named, or left
undecided among the candidates when nothing is named, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from azure.mgmt.network.models import SecurityRule, SecurityRulePropertiesFormat

from lab.cases.load import parse_case
from lab.cases.other_evidence import (
    OtherEvidence,
    cpu_busy,
    cpu_capacity,
    memory_free_mib,
    nsg_rules_from,
    policy_of,
    power_from,
    queue_order,
    read_guest_output,
    script_settings,
    sections,
    system_proxy,
)
from lab.runner import round_trip
from lab.runner.phases import PhaseFailed

MiB = 1024 * 1024

TOP_BUSY = """\
top - 11:50:01 up 3 min,  0 user,  load average: 9.12, 4.01, 1.50
Tasks:  61 total,  49 running,  12 sleeping,   0 stopped,   0 zombie
%Cpu(s): 97.0 us,  3.0 sy,  0.0 ni,  0.0 id,  0.0 wa,  0.0 hi,  0.0 si,  0.0 st
MiB Mem :   7940.0 total,   1200.0 free,   3000.0 used,   3740.0 buff/cache
MiB Swap:      0.0 total,      0.0 free,      0.0 used.   4600.0 avail Mem
"""
TOP_QUIET = TOP_BUSY.replace("49 running,  12 sleeping", " 1 running,  20 sleeping")
FREE = """\
               total        used        free      shared  buff/cache   available
Mem:            1024         990          10           1          24          18
Swap:              0           0           0
"""
FREE_ROOMY = FREE.replace("990          10", "200         700").replace("    18", "   800")


def _pasted(
    top: str, free: str, limit: str = "max", current: str = "", env: str = "", script: str = ""
) -> str:
    return (
        f"### top -bn1\n{top}### nproc\n2\n### cpu.max\n100000 100000\n### free -m\n{free}"
        f"### memory.max\n{limit}\n### memory.current\n{current}\n"
        f"### memory.stat\ninactive_file 0\n### /etc/environment\n{env}\n"
        f"### /etc/azure/VMSnapshotScriptPluginConfig.json\n{script}\n"
    )


def test_sections_split_at_header_lines() -> None:
    assert sections("noise\n### a\n1\n2\n### b c\n3\n") == {"a": "1\n2", "b c": "3"}


@pytest.mark.parametrize(
    ("nproc", "cpu_max", "capacity"),
    [
        ("2", "100000 100000", 1.0),
        ("2", "50000 100000", 0.5),
        ("2", "max 100000", 2.0),  # v2: no quota
        ("2", "-1 100000", 2.0),  # v1: no quota
        ("4", "", 4.0),
    ],
)
def test_cpu_capacity_is_the_quota_else_the_cpus(nproc: str, cpu_max: str, capacity: float) -> None:
    assert cpu_capacity(nproc, cpu_max) == capacity


def test_cpu_busy_judges_running_tasks_per_cpu() -> None:
    busy = cpu_busy(TOP_BUSY, 1.0)
    assert busy is not None and busy[0] is True
    assert "49 running task(s) for 1 CPU(s)" in busy[1]
    assert cpu_busy(TOP_QUIET, 1.0) == (False, "1 running task(s) for 1 CPU(s)")
    assert cpu_busy("bash: top: command not found", 1.0) is None


def test_memory_free_from_free_m_only_when_low() -> None:
    low = memory_free_mib(FREE, "max", "", "")
    assert low is not None and low[0] == 18
    assert "(98%)" in low[1]
    assert memory_free_mib(FREE_ROOMY, "max", "", "") is None
    assert memory_free_mib("garbage", "max", "", "") is None


def test_memory_free_from_the_vms_limit_and_working_set() -> None:
    limit, current = str(1024 * MiB), str(1010 * MiB)
    assert memory_free_mib(FREE_ROOMY, limit, current, f"inactive_file {2 * MiB}") == (
        16,
        "1008 MiB of 1024 MiB in use (98%), 16 MiB left",
    )
    assert memory_free_mib(FREE, limit, str(300 * MiB), "inactive_file 0") is None
    # samples: the highest use counts (the agent between two OOM kills)
    samples = "\n".join(str(n * MiB) for n in (960, 1010, 970))
    assert memory_free_mib(FREE_ROOMY, limit, samples, "inactive_file 0") == (
        14,
        "1010 MiB of 1024 MiB in use (99%), 14 MiB left",
    )
    # cgroup v1's names: the figures are the same
    assert memory_free_mib(FREE_ROOMY, limit, current, f"total_inactive_file {2 * MiB}") == (
        16,
        "1008 MiB of 1024 MiB in use (98%), 16 MiB left",
    )


@pytest.mark.parametrize(
    ("text", "proxy"),
    [
        ('http_proxy="http://proxy.contoso.com:3128"\n', "http://proxy.contoso.com:3128"),
        ("PATH=/usr/bin\nexport HTTP_PROXY=http://10.0.0.4:8080\n", "http://10.0.0.4:8080"),
        ("PATH=/usr/bin\n", None),
        ("# http_proxy=http://old:1\n", None),
    ],
)
def test_system_proxy(text: str, proxy: str | None) -> None:
    assert system_proxy(text) == proxy


@pytest.mark.parametrize(
    ("text", "settings"),
    [
        (
            '{"pluginName": "ScriptRunner", "timeoutInSeconds": 3600, '
            '"continueBackupOnFailure": false}',
            {"timeout_seconds": 3600, "continue_on_failure": False},
        ),
        (
            '{"timeoutInSeconds": "60", "continueBackupOnFailure": "True"}',
            {"timeout_seconds": 60, "continue_on_failure": True},
        ),
        ('{"timeoutInSeconds": 0, "continueBackupOnFailure": 1}', {}),
        ("", {}),
        ("[1, 2]", {}),
        ("cat: permission denied", {}),
    ],
)
def test_script_settings(text: str, settings: dict[str, Any]) -> None:
    assert script_settings(text) == settings


@pytest.mark.parametrize(
    ("state", "answers", "power"),
    [
        ("PowerState/running", True, None),
        ("PowerState/stopped", False, "shut-down-inside"),
        ("PowerState/running", False, "shut-down-inside-unseen"),
        (None, False, "shut-down-inside-unseen"),
    ],
)
def test_power_from_the_instance_view_and_an_answer(
    state: str | None, answers: bool, power: str | None
) -> None:
    assert power_from(state, answers) == power


def test_nsg_rules_as_az_lists_them() -> None:
    rule = SecurityRule(
        name="DenyStorageOutbound",
        properties=SecurityRulePropertiesFormat(
            protocol="*",
            source_address_prefix="*",
            source_port_range="*",
            destination_address_prefix="Storage",
            destination_port_range="*",
            access="Deny",
            priority=200,
            direction="Outbound",
        ),
    )
    assert nsg_rules_from([rule, SecurityRule(name="empty")]) == [
        {
            "name": "DenyStorageOutbound",
            "direction": "Outbound",
            "access": "Deny",
            "priority": 200,
            "protocol": "*",
            "source": "*",
            "destination": "Storage",
            "ports": "*",
        }
    ]


def test_policy_of_the_vm_with_its_members() -> None:
    policies = {
        "policies": [
            {"name": "Other", "schedule_run_time": "01:00", "vms": ["vm2"]},
            {"name": "DailyPolicy", "schedule_run_time": "12:10", "vms": ["vm2", "vm1"]},
        ]
    }
    assert policy_of("vm1", policies) == {
        "name": "DailyPolicy",
        "time": "12:10",
        "vms": ["vm2", "vm1"],
    }
    assert policy_of("vm3", policies) is None


def test_queue_order_puts_the_vms_whose_scheduled_jobs_completed_first() -> None:
    jobs = [  # newest first, as az backup job list gives them
        {"vm": "vm3", "status": "Failed", "trigger": "Scheduled"},
        {"vm": "vm2", "status": "Completed", "trigger": "Scheduled"},
        {"vm": "vm1", "status": "Failed", "trigger": "Scheduled"},
        {"vm": "vm4", "status": "Completed", "trigger": "Scheduled"},
        {"vm": "vm1", "status": "Completed", "trigger": "OnDemand"},
        {"vm": "vm3", "status": "Completed", "trigger": "Scheduled"},  # an older run
    ]
    order, seen = queue_order(["vm1", "vm2", "vm3", "vm4", "vm5"], jobs)
    assert order == ["vm2", "vm4", "vm1", "vm3", "vm5"]
    assert seen == "vm1 Failed, vm2 Completed, vm3 Failed, vm4 Completed"
    assert queue_order(["vm1", "vm2"], []) == (["vm1", "vm2"], "")


def _case(**vm: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "name": "imported",
        "vms": [{"name": "vm1", "agent": "2.7.3.0", **vm}],
        "evidence": {"vms[0].agent": "var/log/waagent.log:3: ..."},
    }


def test_guest_output_and_platform_facts_join_the_case_with_their_sources() -> None:
    found = OtherEvidence(
        nsg_rules=[
            {"name": "DenyStorageOutbound", "access": "Deny", "priority": 200, "ports": "*"}
        ],
        policy={"name": "DailyPolicy", "time": "12:10", "vms": ["vm2", "vm1"]},
        other_vms=[{"name": "vm2", "agent": "2.7.3.0"}],
        evidence={"nsg.rules[0]": "platform: az network nsg rule list: DenyStorageOutbound"},
    )
    read_guest_output(
        _pasted(TOP_BUSY, FREE, env='http_proxy="http://proxy.contoso.com:3128"'), found
    )
    document = found.apply(_case())
    assert document["vms"][0]["load"] == {"cpu_busy": True, "memory_free_mib": 18}
    proxy = {"http": "http://proxy.contoso.com:3128", "where": "system"}
    assert document["vms"][0]["proxy"] == proxy
    assert [vm["name"] for vm in document["vms"]] == ["vm1", "vm2"]
    evidence = document["evidence"]
    assert evidence["vms[0].agent"].startswith("var/log/waagent.log")
    assert evidence["vms[0].load.cpu_busy"].startswith("guest: top -bn1: 49 running")
    assert evidence["vms[0].load.memory_free_mib"].startswith("guest: free -m: ")
    assert evidence["vms[0].proxy"] == f"guest: cat /etc/environment: http_proxy={proxy['http']}"
    # and it is a valid case file
    case = parse_case(yaml.safe_dump(document))
    assert case.backup.policy is not None and case.backup.policy.vms == ["vm2", "vm1"]
    assert case.nsg.rules[0].destination == "*"


def test_script_settings_join_the_imported_hanging_script() -> None:
    found = OtherEvidence()
    config = '{"timeoutInSeconds": 3600, "continueBackupOnFailure": false}'
    read_guest_output(_pasted(TOP_QUIET, FREE_ROOMY, script=config), found)
    document = found.apply(_case(prepost_script={"hangs": True}))
    assert document["vms"][0]["prepost_script"] == {
        "hangs": True,
        "timeout_seconds": 3600,
        "continue_on_failure": False,
    }
    assert document["evidence"]["vms[0].prepost_script.continue_on_failure"] == (
        "guest: sudo cat /etc/azure/VMSnapshotScriptPluginConfig.json: "
        "continueBackupOnFailure False"
    )
    case = parse_case(yaml.safe_dump(document))
    assert case.vms[0].prepost_script.continue_on_failure is False


def test_a_quiet_guest_adds_nothing_and_the_agents_own_proxy_is_kept() -> None:
    found = OtherEvidence()
    read_guest_output(_pasted(TOP_QUIET, FREE_ROOMY, env="http_proxy=http://p:1"), found)
    agent_proxy = {"http": "http://proxy.snaplab.internal:3128", "where": "agent"}
    document = found.apply(_case(proxy=agent_proxy))
    assert document["vms"][0]["proxy"] == agent_proxy
    assert "load" not in document["vms"][0]
    assert set(document["evidence"]) == {"vms[0].agent"}


# ---------------------------------------------------------------- the variant's verdict


@dataclass
class _Undecided:
    cause: str


@dataclass
class _Found:
    cause_ids: tuple[str, ...]
    undecided: list[_Undecided] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"causes": list(self.cause_ids)}


@dataclass
class _Ctx:
    expected: list[str]
    scratch: dict[str, Any] = field(default_factory=lambda: {"bundle": "b.zip"})
    diagnoses: dict[str, Any] = field(default_factory=dict)

    @property
    def scenario(self) -> Any:
        expect = SimpleNamespace(diagnosis=self.expected)
        return SimpleNamespace(spec=SimpleNamespace(expect=expect))

    @property
    def record(self) -> Any:
        return self


@pytest.mark.parametrize(
    ("named", "undecided", "passes"),
    [
        (("blocked-egress",), [], True),
        ((), ["blocked-egress", "cpu-saturation"], True),
        (("agent-stopped",), ["blocked-egress"], False),  # another cause named
        (("blocked-egress", "agent-stopped"), [], False),  # more than its own
        ((), ["cpu-saturation"], False),  # its cause not even a candidate
    ],
)
def test_bundle_verdict_is_named_or_undecided_among_candidates(
    monkeypatch: pytest.MonkeyPatch, named: tuple[str, ...], undecided: list[str], passes: bool
) -> None:
    found = _Found(named, [_Undecided(c) for c in undecided])
    monkeypatch.setattr("lab.bundle.diagnose.diagnose_bundle_file", lambda _p: found)
    ctx: Any = _Ctx(["blocked-egress"])
    if passes:
        assert round_trip._diagnose_bundle(ctx)
        assert ctx.diagnoses["bundle"] == {"causes": list(named)}
    else:
        with pytest.raises(PhaseFailed):
            round_trip._diagnose_bundle(ctx)


def test_scratch_folder_is_made_once(tmp_path: Path) -> None:
    ctx: Any = type("C", (), {"scratch": {}, "lab": "crt-x"})()
    first = round_trip._scratch(ctx)
    assert first == round_trip._scratch(ctx) and first.is_dir()
    first.rmdir()


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"


@dataclass
class _ImportCtx:
    scratch: dict[str, Any]
    lab: str = "crt-blocked-egress"
    vm: str = "vm1"
    jobs: dict[str, Any] = field(default_factory=dict)

    @property
    def record(self) -> Any:
        return self


def test_import_phase_adds_the_symptom_and_other_evidence_to_the_bundles_case(
    tmp_path: Path,
) -> None:
    other = OtherEvidence(
        nsg_rules=[
            {
                "name": "DenyStorageOutbound",
                "direction": "Outbound",
                "access": "Deny",
                "priority": 200,
                "protocol": "*",
                "source": "*",
                "destination": "Storage",
                "ports": "*",
            }
        ],
        evidence={"nsg.rules[0]": "platform: az network nsg rule list: DenyStorageOutbound"},
    )
    job = {
        "status": "Failed",
        "error_code": "ExtensionSnapshotFailedNoNetwork",
        "error_message": "Snapshot operation failed due to no network connectivity on the "
        "virtual machine",
    }
    ctx: Any = _ImportCtx(
        {"bundle": FIXTURES / "blocked-egress.zip", "other": other, "folder": tmp_path},
        jobs={"backup-fails": job},
    )
    output = round_trip._import_case(ctx)
    case = ctx.scratch["case"]
    assert case.faults == []  # the bundle alone names no cause for an NSG rule
    assert [r.name for r in case.nsg.rules] == ["DenyStorageOutbound"]
    assert case.symptom is not None and case.symptom.error_code == job["error_code"]
    assert case.symptom.message == job["error_message"]
    assert case.evidence["nsg.rules[0]"].startswith("platform: ")
    assert case.source is not None and case.source.redacted
    assert "DenyStorageOutbound" in output and (tmp_path / "case.yaml").is_file()
