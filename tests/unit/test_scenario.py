"""Scenario files: every kind of mistake is one plain line naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import BadInput
from lab.scenario import load_scenario, load_scenarios, scenario_ids, scenarios_dir
from tests.unit.test_runner_fakes import (
    RUNBOOK_MD,
    SCENARIO_YAML,
    FakeFault,
    fake_fault,
    write_scenario,
)

__all__ = ["fake_fault"]  # the fixture, imported for pytest

FILE = "scenarios/demo/scenario.yaml"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_fault: FakeFault) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "scenarios"
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(folder))
    return folder


def _error(root: Path, text: str = SCENARIO_YAML, runbook: str | None = RUNBOOK_MD) -> str:
    write_scenario(root, "demo", text, runbook)
    with pytest.raises(BadInput) as caught:
        load_scenario("demo")
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message


def test_a_valid_scenario_loads_with_its_steps(root: Path) -> None:
    write_scenario(root)
    loaded = load_scenario("demo")
    assert loaded.id == "demo"
    assert loaded.primary_vm == "vm1"
    assert loaded.spec.limits.backup_seconds == 180
    assert loaded.spec.vms[0].agent == "2.7.3.0"
    assert [(s.line, s.kind, s.language) for s in loaded.steps] == [(3, "guest", "bash")]
    assert loaded.runbook_ref == "scenarios/demo/runbook.md"


def test_scenarios_dir_defaults_to_the_repository_catalog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SNAPLAB_SCENARIOS_DIR", raising=False)
    assert scenarios_dir() == REPO_CATALOG
    assert "agent-stopped" in scenario_ids()


def test_missing_field(root: Path) -> None:
    text = SCENARIO_YAML.replace("  backup_error: GuestAgentSnapshotTaskStatusError\n", "")
    assert _error(root, text) == f"{FILE}: expect.backup_error: required field is missing (line 15)"


def test_unknown_key_is_a_typo_not_ignored(root: Path) -> None:
    text = SCENARIO_YAML.replace("  backup_error:", "  backup_eror:")
    assert _error(root, text) == (
        f"{FILE}: expect.backup_eror: unknown field "
        "(expected one of: backup_error, diagnosis) (line 16)"
    )


def test_unknown_top_level_key(root: Path) -> None:
    assert _error(root, SCENARIO_YAML + "notes: hi\n") == (
        f"{FILE}: notes: unknown field (expected one of: id, title, cause, fidelity, vms, "
        "warmup_backup, faults, expect, runbook, limits, agent_variants) (line 21)"
    )


def test_unknown_agent_version(root: Path) -> None:
    text = SCENARIO_YAML.replace("agent: 2.7.3.0", "agent: '9.9'")
    assert _error(root, text) == (
        f"{FILE}: vms[0].agent: '9.9' is not one of 2.2.47, 2.7.3.0, 2.12.0.2 (line 9)"
    )


def test_agent_written_as_a_number_is_compared_as_text(root: Path) -> None:
    text = SCENARIO_YAML.replace("agent: 2.7.3.0", "agent: 2.7")
    assert _error(root, text) == (
        f"{FILE}: vms[0].agent: '2.7' is not one of 2.2.47, 2.7.3.0, 2.12.0.2 (line 9)"
    )


def test_wrong_type(root: Path) -> None:
    text = SCENARIO_YAML.replace("backup_seconds: 180", "backup_seconds: '180'")
    assert _error(root, text) == (
        f"{FILE}: limits.backup_seconds: expected a number, got the text '180' (line 20)"
    )


def test_wrong_bool(root: Path) -> None:
    text = SCENARIO_YAML.replace("warmup_backup: false", "warmup_backup: 'no'")
    assert _error(root, text) == (
        f"{FILE}: warmup_backup: expected true or false, got the text 'no' (line 10)"
    )


def test_non_positive_limit(root: Path) -> None:
    text = SCENARIO_YAML.replace("backup_seconds: 180", "backup_seconds: 0")
    assert _error(root, text) == (
        f"{FILE}: limits.backup_seconds: must be more than 0, got the number 0 (line 20)"
    )


def test_empty_list(root: Path) -> None:
    text = SCENARIO_YAML.replace("  diagnosis: [demo]", "  diagnosis: []")
    assert _error(root, text) == f"{FILE}: expect.diagnosis: must not be empty (line 17)"


def test_bad_vm_name(root: Path) -> None:
    text = SCENARIO_YAML.replace("name: vm1", "name: VM_1")
    assert _error(root, text) == (
        f"{FILE}: vms[0].name: 'VM_1' must be lowercase letters, digits and '-', starting "
        "with a letter, at most 15 characters (line 8)"
    )


def test_unknown_backup_error_code(root: Path) -> None:
    text = SCENARIO_YAML.replace(
        "backup_error: GuestAgentSnapshotTaskStatusError", "backup_error: SnapshotTimeout"
    )
    message = _error(root, text)
    assert message.startswith(
        f"{FILE}: expect.backup_error: 'SnapshotTimeout' is not an Azure Backup error code ("
    )
    assert "GuestAgentSnapshotTaskStatusError" in message and message.endswith("(line 16)")


def test_id_must_equal_the_folder_name(root: Path) -> None:
    text = SCENARIO_YAML.replace("id: demo", "id: demo-two")
    assert _error(root, text) == (
        f"{FILE}: id: 'demo-two' must be the folder's name, 'demo' (line 1)"
    )


def test_unknown_fault(root: Path) -> None:
    text = SCENARIO_YAML.replace("fault: demo-fault", "fault: no-such-fault")
    message = _error(root, text)
    assert message.startswith(f"{FILE}: faults[0].fault: unknown fault 'no-such-fault' (known: ")
    assert "demo-fault" in message and message.endswith("(line 12)")


def test_fault_on_a_vm_the_scenario_does_not_have(root: Path) -> None:
    text = SCENARIO_YAML.replace("    vm: vm1", "    vm: vm2")
    assert _error(root, text) == f"{FILE}: faults[0].vm: 'vm2' is not one of vm1 (line 13)"


def test_vm_declared_twice(root: Path) -> None:
    text = SCENARIO_YAML.replace(
        "    agent: 2.7.3.0\n", "    agent: 2.7.3.0\n  - name: vm1\n    agent: 2.2.47\n"
    )
    assert _error(root, text) == f"{FILE}: vms[1].name: 'vm1' is declared twice (line 10)"


def test_diagnosis_must_name_a_scenario_of_the_catalog(root: Path) -> None:
    text = SCENARIO_YAML.replace("diagnosis: [demo]", "diagnosis: [demo, agent-stoped]")
    assert _error(root, text) == (
        f"{FILE}: expect.diagnosis[1]: 'agent-stoped' is not a scenario id (demo) (line 17)"
    )


def test_runbook_file_must_exist(root: Path) -> None:
    assert _error(root, runbook=None) == (
        f"{FILE}: runbook: file 'runbook.md' does not exist in scenarios/demo (line 18)"
    )


def test_runbook_must_be_a_file_name_in_the_folder(root: Path) -> None:
    text = SCENARIO_YAML.replace("runbook: runbook.md", "runbook: ../other/runbook.md")
    assert _error(root, text) == (
        f"{FILE}: runbook: '../other/runbook.md' must be a file name in scenarios/demo (line 18)"
    )


def test_runbook_needs_an_executable_step(root: Path) -> None:
    runbook = "# Runbook\n\n```bash\nsystemctl restart walinuxagent\n```\n"
    assert _error(root, runbook=runbook) == (
        "scenarios/demo/runbook.md: no executable step "
        "(fences marked 'bash guest', 'bash platform' or 'python platform')"
    )


def test_runbook_fence_with_a_typo(root: Path) -> None:
    runbook = "# Runbook\n\n```bash guets\nsystemctl restart walinuxagent\n```\n"
    assert _error(root, runbook=runbook) == (
        "scenarios/demo/runbook.md line 3: fence 'bash guets': expected 'bash guest', "
        "'bash guest vm=NAME', 'bash platform' or 'python platform', "
        "optionally followed by 'fix'"
    )


def test_runbook_without_a_fix_step_is_refused(root: Path) -> None:
    runbook = "# Runbook\n\n```bash guest\nsystemctl restart walinuxagent\n```\n"
    assert _error(root, runbook=runbook) == (
        "scenarios/demo/runbook.md: no step is marked as the fix (add 'fix' to the fence "
        "of the step(s) that clear the cause, e.g. 'bash guest fix')"
    )


def test_every_catalog_runbook_marks_its_fix() -> None:
    for scenario in load_scenarios():
        fixes = [s for s in scenario.steps if s.fix]
        assert fixes, scenario.id
        assert len(fixes) < len(scenario.steps), f"{scenario.id}: every step is the fix"


def test_runbook_step_on_a_vm_the_scenario_does_not_have(root: Path) -> None:
    runbook = "# Runbook\n\n```bash guest vm=vm7\ntrue\n```\n"
    assert _error(root, runbook=runbook) == (
        "scenarios/demo/runbook.md line 3: vm='vm7' is not one of the scenario's VMs (vm1)"
    )


def test_yaml_syntax_error_names_the_line(root: Path) -> None:
    text = SCENARIO_YAML.replace("title: A demo failure", "title: [unclosed")
    assert _error(root, text) == (
        f"{FILE}: line 3, column 6: YAML syntax error: expected ',' or ']', but got ':'"
    )


def test_duplicate_key(root: Path) -> None:
    text = SCENARIO_YAML + "id: demo\n"
    assert _error(root, text) == (
        f"{FILE}: line 21, column 1: YAML syntax error: key 'id' appears twice"
    )


def test_file_that_is_not_a_mapping(root: Path) -> None:
    assert _error(root, "- id: demo\n") == (
        f"{FILE}: expected a mapping of fields (id, title, ...), got a list"
    )


def test_folder_without_a_scenario_file(root: Path) -> None:
    (root / "demo").mkdir(parents=True)
    with pytest.raises(BadInput, match=r"^scenarios/demo: no scenario.yaml in this"):
        load_scenario("demo")


def test_unknown_scenario_id_lists_the_known_ones(root: Path) -> None:
    write_scenario(root)
    write_scenario(root, "other", SCENARIO_YAML.replace("id: demo", "id: other"))
    with pytest.raises(BadInput) as caught:
        load_scenarios(["demo", "nope"])
    assert str(caught.value) == "unknown scenario 'nope' (known: demo, other)"


def test_no_ids_loads_the_whole_catalog_in_order(root: Path) -> None:
    write_scenario(root, "zeta", SCENARIO_YAML.replace("id: demo", "id: zeta"))
    write_scenario(root)
    (root / ".hidden").mkdir()
    assert [s.id for s in load_scenarios()] == ["demo", "zeta"]
    assert [s.id for s in load_scenarios(["zeta", "demo", "zeta"])] == ["zeta", "demo"]


REPO_CATALOG = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize("scenario_id", scenario_ids(REPO_CATALOG))
def test_every_catalog_scenario_is_valid(scenario_id: str) -> None:
    loaded = load_scenario(scenario_id, REPO_CATALOG)
    assert loaded.steps, f"{scenario_id}: the runbook has no executable step"
