"""``snaplab diagnose``: output, JSON, and one-line errors for an unknown lab or VM."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from checks.fakes import FAKE_ROSTER, fake_context, healthy_host, healthy_platform
from checks.result import CheckResult
from lab import cli_diagnose
from lab.cli import SnaplabGroup
from lab.diagnosis import Cause, Diagnosis, diagnose_context
from lab.diagnosis.engine import causes_from
from lab.errors import LabNotFound

GROUP = SnaplabGroup(commands={"diagnose": cli_diagnose.diagnose})


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_diagnose.engines, "connect_for_lab", lambda lab: object())
    monkeypatch.setattr(cli_diagnose.labs, "resolve_lab", lambda client, name: name or "fake")
    monkeypatch.setattr(cli_diagnose.labs, "roster_of", lambda client, name: FAKE_ROSTER)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(GROUP, ["diagnose", *args], obj={})


def test_healthy_vm_human_output(lab: None, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = fake_context(healthy_host(), healthy_platform())
    monkeypatch.setattr(cli_diagnose, "run_diagnosis", lambda c, r, vm: diagnose_context(ctx))
    result = invoke("vm1", "--lab", "fake")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "vm1: no cause found" and lines[1] == "checks:"
    assert all(line.startswith("  pass  ") for line in lines[2:])


def test_causes_come_first_with_evidence_and_runbook(
    lab: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = (CheckResult.fail("guest.waagent_conf", "Extensions.Enabled=n"),)
    found = Diagnosis("vm1", causes_from(checks), checks)
    monkeypatch.setattr(cli_diagnose, "run_diagnosis", lambda c, r, vm: found)
    result = invoke("vm1")
    assert result.exit_code == 0
    assert result.output.splitlines()[:4] == [
        "vm1: 1 cause(s) found",
        "  extensions-disabled  (runbook: scenarios/extensions-disabled/runbook.md)",
        "    - guest.waagent_conf: Extensions.Enabled=n",
        "checks:",
    ]


def test_json_output(lab: None, monkeypatch: pytest.MonkeyPatch) -> None:
    found = Diagnosis(
        "vm1",
        (Cause("agent-stopped", ("guest.agent_running: no waagent process",)),),
        (CheckResult.fail("guest.agent_running", "no waagent process"),),
    )
    monkeypatch.setattr(cli_diagnose, "run_diagnosis", lambda c, r, vm: found)
    result = invoke("vm1", "--json")
    assert json.loads(result.output) == {
        "vm": "vm1",
        "causes": [
            {
                "id": "agent-stopped",
                "evidence": ["guest.agent_running: no waagent process"],
                "runbook": "scenarios/agent-stopped/runbook.md",
            }
        ],
        "checks": [{"id": "guest.agent_running", "passed": False, "detail": "no waagent process"}],
    }


def test_unknown_vm_is_bad_input(lab: None) -> None:
    result = invoke("vm9", "--lab", "fake")
    assert result.exit_code == 2
    assert result.output.strip() == ("Error: VM 'vm9': lab 'fake' has no such VM (it has: vm1)")


def test_unknown_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_diagnose.engines, "connect_for_lab", lambda lab: object())

    def missing(client: object, name: str | None) -> str:
        raise LabNotFound(f"no lab named {name!r} (running: none)")

    monkeypatch.setattr(cli_diagnose.labs, "resolve_lab", missing)
    result = invoke("vm1", "--lab", "nope")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: no lab named 'nope' (running: none)"
