"""``snaplab diagnose --bundle``: human and JSON output, and bad input as one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from lab.cli import cli as GROUP

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(GROUP, ["diagnose", *args], obj={})


def test_causes_evidence_runbook_and_what_could_not_run() -> None:
    result = invoke("--bundle", str(FIXTURES / "agent-stopped.zip"))
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("agent-stopped.zip: 1 cause(s) found")
    assert "agent-stopped  (runbook: scenarios/agent-stopped/runbook.md)" in out
    assert "- var/log/waagent.log:" in out
    assert "checks that cannot run from a bundle:" in out
    assert "platform.nsg_egress" in out
    assert "undecided from a bundle" in out


def test_healthy_bundle_names_no_cause() -> None:
    result = invoke("--bundle", str(FIXTURES / "healthy-2.7.3.0.zip"))
    assert result.exit_code == 0
    assert result.output.startswith("healthy-2.7.3.0.zip: no cause found")


def test_json() -> None:
    result = invoke("--bundle", str(FIXTURES / "stale-agent.zip"), "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert [cause["id"] for cause in data["causes"]] == ["stale-agent"]
    assert data["causes"][0]["runbook"] == "scenarios/stale-agent/runbook.md"
    assert {item["id"] for item in data["cannot_run"]} >= {"guest.cpu_load", "platform.vm_agent"}
    assert all({"id", "needs", "seen", "runbook"} <= set(item) for item in data["undecided"])


def test_bad_bundle_is_one_line_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "logs.zip"
    junk.write_bytes(b"\x00\xff" * 500)
    result = invoke("--bundle", str(junk))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0
    assert "logs.zip: not a zip file" in result.output


def test_missing_bundle_and_bundle_with_vm(tmp_path: Path) -> None:
    assert invoke("--bundle", str(tmp_path / "none.zip")).exit_code == 2
    both = invoke("vm1", "--bundle", str(FIXTURES / "stale-agent.zip"))
    assert both.exit_code == 2 and "not both" in both.output
    assert invoke().exit_code == 2
