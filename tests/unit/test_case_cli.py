"""``snaplab case``: input errors before Docker, export from a lab's state folder, the
redaction hook (lab.cli_case, lab.cases.origin)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab.cases import origin
from lab.cases.load import parse_case
from lab.cli import cli
from lab.cli_case import case, redact_case
from lab.scenario import load_scenario

CASE = "format: 1\nname: tiny\nvms:\n  - {name: vm1, agent: 2.7.3.0}\n"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.output


@pytest.mark.parametrize("command", ["up", "run"])
def test_bad_case_is_one_line_exit_2(tmp_path: Path, command: str) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(CASE.replace("2.7.3.0", "2.3"), encoding="utf-8")
    code, output = invoke("case", command, str(path))
    assert code == 2
    assert output.count("\n") == 1 and "vms[0].agent: '2.3' is not one of" in output
    assert "Traceback" not in output


def test_unknown_fault_is_refused_by_case_up(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(CASE + "faults:\n  - {fault: cosmic-ray, vm: vm1}\n", encoding="utf-8")
    code, output = invoke("case", "up", str(path))
    assert code == 2 and "faults[0].fault: unknown fault 'cosmic-ray'" in output


def test_run_without_a_symptom_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(CASE, encoding="utf-8")
    code, output = invoke("case", "run", str(path))
    assert code == 2 and "symptom: `case run` compares" in output


def test_bad_lab_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "case.yaml"
    path.write_text(CASE, encoding="utf-8")
    code, output = invoke("case", "up", str(path), "--lab", "Bad_Name")
    assert code == 2 and "--lab 'Bad_Name'" in output


def test_group_is_extensible() -> None:
    assert {"up", "run", "export"} <= set(case.commands)


def test_export_writes_the_recorded_case_with_the_agents_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path))
    built = parse_case(CASE + "  - {name: vm2, agent: 2.2.47, dhcp: false}\n")
    origin.record_case("lab1", built)
    shown = {
        "vms": [
            {"name": "vm1", "agent": {"version": "2.7.3.0"}},
            {"name": "vm2", "agent": {"version": None}},
        ]
    }
    exported = origin.exported_case("lab1", shown)
    assert exported == built
    assert origin.exported_case("lab2", shown).vms[1].agent == "2.7.3.0"  # default agent


def test_scenario_recorded_as_a_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path))
    origin.record_scenario("lab1", load_scenario("broken-extension"))
    found = origin.recorded("lab1")
    assert found is not None and found.name == "broken-extension"
    assert [f.fault for f in found.faults] == ["broken-extension"]
    assert found.vms[0].extensions[0].handler_state == "enabled"  # the warm-up installed it
    assert found.symptom is not None
    assert found.symptom.error_code == "GuestAgentSnapshotTaskStatusError"


def test_redaction_hook_takes_the_case_from_the_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    found = parse_case(CASE)
    fake = types.ModuleType("lab.cases.redact")
    fake.redact_case = lambda c: (c.model_copy(update={"name": "redacted"}), "report")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lab.cases.redact", fake)
    assert redact_case(found).name == "redacted"
    monkeypatch.setitem(sys.modules, "lab.cases.redact", types.ModuleType("lab.cases.redact"))
    assert redact_case(found) == found  # no redactor in it: unchanged
