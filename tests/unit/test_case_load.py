"""Case files: validation with one-line errors naming file and field, and dump/load round
trips (lab.cases.load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cases.load import dump_case, load_case, parse_case
from lab.cases.model import Case
from lab.errors import BadInput
from lab.faults import known_fault_ids

FULL = """\
format: 1
name: contoso-backup-timeouts
description: agent 2.2.47, proxy configured, backups time out
source:
  bundle: logs.zip
  imported_at: 2026-12-07T10:00:00Z
  redacted: true
vms:
  - name: vm1
    agent: 2.2.47
    guest: debian
    size: Standard_B1s
    waagent_conf: {Extensions.Enabled: "n", Logs.Verbose: "y"}
    proxy: {http: "http://proxy.snaplab.internal:3128", where: system}
    agent_service: crashed
    dhcp: true
    extensions:
      - type: Microsoft.Azure.RecoveryServices.VMSnapshotLinux
        version: "1.0.9225.0"
        handler_state: enabled
        status_code: 0
    load: {cpu_busy: false, memory_free_mib: 200}
    prepost_script: {hangs: false}
    power: running
  - {name: vm2, agent: 2.7.3.0, guest: netplan}
nsg:
  rules:
    - {name: DenyStorageOutbound, direction: Outbound, access: Deny, priority: 100,
       destination: Storage, protocol: "*", ports: "*"}
backup:
  policy: {name: DefaultPolicy, time: 12:30}
faults:
  - {fault: stale-agent, vm: vm1, params: {}}
symptom:
  error_code: UserErrorGuestAgentStatusUnavailable
  message: VM Agent unable to communicate with Azure Backup
  sub_task: Take Snapshot
  started: 2026-12-01T02:00:00Z
  duration_minutes: 25
evidence:
  vms[0].agent: "WALinuxAgent/waagent.log:3: WALinuxAgent-2.2.47 running as process 512"
"""

MINIMAL = """\
format: 1
name: smallest
vms:
  - {name: vm1, agent: 2.7.3.0}
"""


def _error(text: str) -> str:
    with pytest.raises(BadInput) as caught:
        parse_case(text, "case.yaml", known_fault_ids())
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_full_case_loads_with_every_field() -> None:
    case = parse_case(FULL)
    vm = case.vms[0]
    assert vm.agent == "2.2.47" and vm.guest == "debian" and vm.agent_service == "crashed"
    assert vm.waagent_conf == {"Extensions.Enabled": "n", "Logs.Verbose": "y"}
    assert vm.proxy is not None and vm.proxy.where == "system"
    assert vm.extensions[0].status_code == 0
    assert case.vms[1].guest == "netplan"
    assert case.nsg.rules[0].destination == "Storage"
    assert case.backup.policy is not None and case.backup.policy.time == "12:30"
    assert case.symptom is not None and case.symptom.started == "2026-12-01T02:00:00Z"
    assert case.source is not None and case.source.imported_at == "2026-12-07T10:00:00Z"
    assert case.symptom_vm == "vm1"


@pytest.mark.parametrize("text", [FULL, MINIMAL])
def test_dump_load_round_trip(text: str) -> None:
    case = parse_case(text)
    dumped = dump_case(case)
    assert parse_case(dumped) == case
    assert dump_case(parse_case(dumped)) == dumped


def test_dump_keeps_the_schema_order_and_leaves_defaults_out() -> None:
    dumped = dump_case(parse_case(MINIMAL))
    assert dumped == "format: 1\nname: smallest\nvms:\n- name: vm1\n  agent: 2.7.3.0\n"


def test_load_case_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert isinstance(load_case(path), Case)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such case file"):
        load_case(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("agent: 2.7.3.0}", "agent: '2.3'}"), "case.yaml: vms[0].agent: '2.3' is not one of"),
        (("agent: 2.7.3.0}", "agent: 2.3}"), "vms[0].agent: '2.3' is not one of"),
        (("agent: 2.7.3.0}", "agent: 2.7.3.0, guest: suse}"), "vms[0].guest: unknown guest"),
        (("agent: 2.7.3.0}", "agent: 2.7.3.0, agnet: x}"), "vms[0].agnet: unknown field"),
        (("agent: 2.7.3.0}", "agent: 2.7.3.0, dhcp: 'no'}"), "vms[0].dhcp: expected true or"),
        (("format: 1", "format: 2"), "format: the number 2 is not allowed"),
        (("name: smallest", "name: Big_Case"), "name: 'Big_Case' must be lowercase"),
        (("name: smallest\n", ""), "name: required field is missing"),
        (
            ("agent: 2.7.3.0}", "agent: 2.7.3.0, waagent_conf: {Extensions.Enabled: no}}"),
            "vms[0].waagent_conf.Extensions.Enabled: 'no' reads as a YAML boolean",
        ),
        (
            ("agent: 2.7.3.0}", "agent: 2.7.3.0, waagent_conf: {HttpProxy.Host: p}}"),
            "vms[0].waagent_conf.HttpProxy.Host: say the agent's proxy as proxy:",
        ),
        (
            ("agent: 2.7.3.0}", "agent: 2.7.3.0, proxy: {http: 'ftp://x'}}"),
            "vms[0].proxy.http: 'ftp://x' must be an http:// URL",
        ),
        (
            ("agent: 2.7.3.0}", "agent: 2.7.3.0, agent_service: crashed}"),
            "vms[0].agent_service: 'crashed' is built as the stale-agent fault",
        ),
        (
            ("agent: 2.7.3.0}", "agent: 2.7.3.0, power: off}"),
            "vms[0].power: false is not allowed",
        ),
    ],
)
def test_field_errors_name_file_and_path(change: tuple[str, str], expected: str) -> None:
    assert expected in _error(MINIMAL.replace(*change))


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        ("faults:\n  - {fault: no-such-fault, vm: vm1}\n", "faults[0].fault: unknown fault"),
        ("faults:\n  - {fault: agent-stopped, vm: vm9}\n", "faults[0].vm: 'vm9' is not one"),
        ("faults:\n  - {fault: agent-stopped}\n", "faults[0].vm: required field is missing"),
        (
            "nsg:\n  rules:\n    - {name: a, access: Deny, priority: 50}\n",
            "nsg.rules[0].priority: must be at least 100",
        ),
        (
            "nsg:\n  rules:\n    - {name: a, access: Deny, priority: 100}\n"
            "    - {name: b, access: Allow, priority: 100}\n",
            "nsg.rules[1].priority: 100 is taken by rules[0]",
        ),
        (
            "nsg:\n  rules:\n    - {name: a, access: Deny, priority: 100, vm: vm7}\n",
            "nsg.rules[0].vm: 'vm7' is not one",
        ),
        ("backup:\n  policy: {name: P, time: '25:00'}\n", "backup.policy.time: '25:00' must be"),
        ("symptom: {status: Failed}\n", "symptom.error_code: a Failed job has an error code"),
        ("symptom: {error_code: Nope}\n", "symptom.error_code: 'Nope' is not an Azure Backup"),
        (
            "symptom: {status: Completed, error_code: BackUpOperationFailed}\n",
            "symptom.error_code: a Completed job has none",
        ),
        ("symptom: {error_code: BackUpOperationFailed, started: yesterday}\n", "not a time"),
        ("vms:\n  - {name: vm2, agent: 2.7.3.0}\n", "line 5, column 1: YAML syntax error"),
    ],
)
def test_cross_field_errors(tail: str, expected: str) -> None:
    assert expected in _error(MINIMAL + tail)


def test_vm_declared_twice() -> None:
    text = MINIMAL + "  - {name: vm1, agent: 2.2.47}\n"
    assert "vms[1].name: 'vm1' is declared twice" in _error(text)


def test_error_names_the_line() -> None:
    assert "(line 4)" in _error(MINIMAL.replace("agent: 2.7.3.0}", "agent: '9'}"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("format: 1\nname: [\n", "YAML syntax error"),
        ("- a list\n", "expected a mapping of fields"),
        ("", "expected a mapping of fields"),
    ],
)
def test_not_a_case(text: str, expected: str) -> None:
    assert expected in _error(text)


def test_reading_a_case_file_needs_no_fault_or_scenario_code() -> None:
    """A log bundle's import reads and writes case files and must not know the faults:
    what model/load/compare reach (ast, transitively) holds no fault or scenario module."""
    import ast

    from tests.unit.test_independence import (
        FORBIDDEN_MODULES,
        forbidden,
        imports_of,
        in_repo,
        module_path,
    )

    queue = ["lab.cases.model", "lab.cases.load", "lab.cases.compare"]
    seen: set[str] = set()
    bad: list[str] = []
    while queue:
        module = queue.pop()
        path = module_path(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, line in imports_of(module, path, tree):
            if in_repo(name) and forbidden(name, FORBIDDEN_MODULES):
                bad.append(f"{module}:{line}: imports {name}")
            elif in_repo(name):
                queue.append(name)
    assert "lab.yaml_input" in seen
    assert not bad, bad
