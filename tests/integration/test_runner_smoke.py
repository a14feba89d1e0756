"""The runner end to end on a real lab: ``snaplab run agent-stopped`` with its reports.

The canonical scenario goes through every phase for real: a lab with the real agent,
the agent stopped, a backup that times out, the diagnosis, the runbook's steps in the
guest, a backup that completes, a clean diagnosis, and teardown.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from lab.cli_run import run
from lab.provision import lab as labs
from lab.runner import PHASES, lab_name

pytestmark = pytest.mark.integration

PREFIX = f"rn{os.getpid() % 100000}"


def test_agent_stopped_runs_every_phase_and_reports_it(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    lab = lab_name(PREFIX, "agent-stopped")
    journal_path, junit_path = tmp_path / "journal.json", tmp_path / "junit.xml"
    try:
        result = CliRunner().invoke(
            run,
            [
                "agent-stopped",
                "--lab-prefix",
                PREFIX,
                "--journal",
                str(journal_path),
                "--junit",
                str(junit_path),
            ],
        )
    finally:
        labs.down(docker_client, lab)
    journal = json.loads(journal_path.read_text())
    (scenario,) = journal["scenarios"]
    failed = scenario["failed_phase"]
    error = next((p["error"] for p in scenario["phases"] if p["name"] == failed), None)
    assert scenario["status"] == "passed", f"{failed}: {error}"
    assert result.exit_code == 0, result.output
    assert [(p["name"], p["status"]) for p in scenario["phases"]] == [
        (phase.name, "passed") for phase in PHASES
    ]
    assert scenario["lab"] == lab
    assert scenario["jobs"]["backup-fails"]["error_code"] == "GuestAgentSnapshotTaskStatusError"
    assert scenario["jobs"]["backup-completes"]["status"] == "Completed"
    assert [c["id"] for c in scenario["diagnoses"]["diagnose"]["causes"]] == ["agent-stopped"]
    assert scenario["diagnoses"]["verify"]["causes"] == []
    assert lab not in labs.lab_names(docker_client)

    suite = ET.parse(junit_path).getroot().find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["agent-stopped"]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("1", "0", "0")
