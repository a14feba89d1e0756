"""What a case asks of a lab: settings to mechanisms, faults once, in order, and what is
not honoured said (lab.cases.plan)."""

from __future__ import annotations

from lab.cases.load import parse_case
from lab.cases.plan import FAULT_ORDER, default_lab_name, plan_case
from lab.faults import known_fault_ids

HEAD = "format: 1\nname: a-very-long-customer-case-name\n"


def plan(body: str, lab: str | None = None):  # type: ignore[no-untyped-def]
    return plan_case(parse_case(HEAD + body, "case.yaml", known_fault_ids()), lab)


def test_fault_order_names_catalog_faults() -> None:
    assert set(FAULT_ORDER) <= set(known_fault_ids())


def test_lab_name_and_vm_options() -> None:
    found = plan(
        "vms:\n  - {name: vm1, agent: 2.2.47}\n  - {name: vm2, agent: 2.7.3.0, guest: netplan}\n"
    )
    assert found.lab == default_lab_name(parse_case(HEAD + "vms:\n  - {name: v, agent: 2.2.47}\n"))
    assert len(found.lab) <= 20 and not found.lab.endswith("-")
    assert found.vm_options == ("vm1:agent=2.2.47", "vm2:agent=2.7.3.0,guest=netplan")
    assert plan("vms:\n  - {name: vm1, agent: 2.2.47}\n", "cau9").lab == "cau9"
    assert found.steps == () and found.notes == ()


def test_settings_map_to_the_mechanisms_that_do_them() -> None:
    found = plan(
        "vms:\n  - name: vm1\n    agent: 2.2.47\n"
        "    waagent_conf: {Extensions.Enabled: n, Logs.Verbose: y}\n"
        "    proxy: {http: 'http://proxy.snaplab.internal:3128', where: agent}\n"
        "    agent_service: crashed\n    dhcp: false\n"
        "    load: {cpu_busy: true, memory_free_mib: 16}\n"
        "    prepost_script: {hangs: true, timeout_seconds: 600}\n"
        "    power: shut-down-inside-unseen\n"
    )
    kinds = [(s.kind, s.fault) for s in found.steps]
    assert kinds[:2] == [("waagent-conf", None), ("proxy", None)]
    assert [f for f, _ in found.faults] == [
        "extensions-disabled",
        "prescript-hang",
        "dhcp-disabled",
        "cpu-saturation",
        "memory-pressure",
        "stale-agent",
        "power-state-stale",
        "guest-shutdown",
    ]
    conf = found.steps[0]
    assert conf.params == {"Logs.Verbose": "y"} and conf.origin == "vms[0].waagent_conf"
    by_fault = {s.fault: s for s in found.steps if s.kind == "fault"}
    assert by_fault["memory-pressure"].params == {"headroom_mib": 16}
    assert by_fault["prescript-hang"].params == {"timeout_seconds": 600}
    assert by_fault["stale-agent"].origin == "vms[0].agent_service"
    assert found.notes == ()


def test_a_fault_named_twice_is_applied_once_with_the_files_params() -> None:
    found = plan(
        "vms:\n  - {name: vm1, agent: 2.7.3.0, agent_service: stopped}\n"
        "faults:\n  - {fault: guest-shutdown, vm: vm1}\n"
        "  - {fault: agent-stopped, vm: vm1, params: {x: 1}}\n"
    )
    assert found.faults == [("agent-stopped", "vm1"), ("guest-shutdown", "vm1")]
    stopped = next(s for s in found.steps if s.fault == "agent-stopped")
    assert stopped.params == {"x": 1}
    assert stopped.origin == "vms[0].agent_service and faults[1]"


def test_handler_states_warm_up_first() -> None:
    found = plan(
        "vms:\n  - name: vm1\n    agent: 2.7.3.0\n    extensions:\n"
        "      - {type: Microsoft.Azure.RecoveryServices.VMSnapshotLinux, version: 1.0.9225.0,"
        " handler_state: update-failed, status_code: 1}\n"
        "      - {type: Microsoft.CPlat.Core.RunCommandLinux}\n"
        "  - name: vm2\n    agent: 2.7.3.0\n    extensions:\n"
        "      - {type: Microsoft.Azure.RecoveryServices.VMSnapshotLinux,"
        " handler_state: not-installed}\n"
    )
    assert found.steps[0].kind == "warmup" and found.steps[0].vm == "vm1"
    assert [s.vm for s in found.steps if s.kind == "warmup"] == ["vm1"]
    assert found.faults == [("extension-update-failed", "vm1")]
    assert len(found.notes) == 3
    assert any("RunCommandLinux is recorded" in n for n in found.notes)


def test_nsg_rules_go_to_every_vm_or_one_and_policy_to_all() -> None:
    found = plan(
        "vms:\n  - {name: vm1, agent: 2.7.3.0}\n  - {name: vm2, agent: 2.7.3.0}\n"
        "nsg:\n  rules:\n"
        "    - {name: DenyStorage, access: Deny, priority: 100, destination: Storage}\n"
        "    - {name: In, direction: Inbound, access: Allow, priority: 100, vm: vm2, ports: 22}\n"
        "backup:\n  policy: {name: DailyPolicy, time: '02:00'}\n"
    )
    rules = [(s.vm, s.params["name"]) for s in found.steps if s.kind == "nsg-rule"]
    assert rules == [("vm1", "DenyStorage"), ("vm2", "DenyStorage"), ("vm2", "In")]
    policy = next(s for s in found.steps if s.kind == "policy")
    assert policy.params == {"name": "DailyPolicy", "time": "02:00", "vms": ["vm1", "vm2"]}
    assert found.notes == ("nsg.rules[1]: an inbound rule is recorded in the NSG, not enforced",)


def test_size_and_foreign_proxy_are_noted() -> None:
    found = plan(
        "vms:\n  - {name: vm1, agent: 2.7.3.0, size: Standard_D2s_v3,"
        " proxy: {http: 'http://proxy.contoso.com:8080'}}\n"
    )
    assert any("Standard_D2s_v3 is recorded" in n for n in found.notes)
    assert any("stands in for http://proxy.contoso.com:8080" in n for n in found.notes)
