"""A real two-trainee drill through the CLI: start, status, check (not yet), hint, a check
asked from inside a VM over the trainee's own SSH (check-my-solution, answered by the watcher),
the runbook applied to one trainee's lab, check (fixed), a reset reached with the same SSH
line, end; nothing of it stays behind.

The drill's state lives in a folder of its own (SNAPLAB_STATE_DIR), so "nothing stays"
is checked on the drill's labels and on that folder.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner, Result

from lab.cli import cli
from lab.drill import watch
from lab.provision import lab as labs
from lab.provision.labels import LAB_LABEL
from lab.runner import DockerDrivers
from lab.scenario import load_scenario

pytestmark = pytest.mark.integration

DRILL = f"dra{os.getpid() % 10000}"
LABS = (f"{DRILL}-t01", f"{DRILL}-t02")


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, ["drill", *args], obj={})
    assert result.exit_code == 0, f"drill {' '.join(args)}: {result.output}"
    return result


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "state"
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    yield folder


def _labelled(client: docker.DockerClient, lab: str) -> list[str]:
    selector = {"label": f"{LAB_LABEL}={lab}"}
    found = [c.name for c in client.containers.list(all=True, filters=selector)]
    found += [n.name for n in client.networks.list(filters=selector)]
    found += [v.name for v in client.volumes.list(filters=selector)]
    return found


def test_two_trainee_drill(docker_client: docker.DockerClient, state_dir: Path) -> None:
    try:
        started = _invoke(
            "start",
            "--trainees",
            "2",
            "--scenario",
            "agent-stopped",
            "--scenario",
            "blocked-egress",
            "--name",
            DRILL,
            "--time-limit",
            "30m",
        )
        assert f"drill {DRILL} started: 2 lab(s)" in started.output
        folder = state_dir / "drills" / DRILL
        state = json.loads((folder / "drill.json").read_text())
        symptoms = {t["id"]: t["symptom"]["error_code"] for t in state["trainees"]}
        assert symptoms == {
            "t01": "GuestAgentSnapshotTaskStatusError",
            "t02": "ExtensionSnapshotFailedNoNetwork",
        }
        room = (folder / "roster-trainees.txt").read_text()
        assert "agent-stopped" not in room and "blocked-egress" not in room
        assert "scenario agent-stopped" in (folder / "roster.txt").read_text()

        assert "t01      working         0" in _invoke("status", "--drill", DRILL).output
        assert "not yet (attempt 1)" in _invoke("check", "t01").output
        hint = _invoke("hint", "t01").output
        assert "hint 1 of" in hint and "Runbook:" not in hint

        # The trainee's fix: the scenario's runbook, as the runner applies it.
        roster = labs.roster_of(docker_client, LABS[0])
        scenario = load_scenario("agent-stopped")
        result = DockerDrivers(docker_client).run_runbook(roster, scenario, threading.Event())
        assert result.failed is None, result.transcript(scenario.runbook_ref)
        assert "fixed (attempt 2" in _invoke("check", "t01").output

        # t02 asks from inside the VM, over their own SSH, as the trainee would.
        trainee = json.loads((folder / "drill.json").read_text())["trainees"][1]
        assert trainee["access"]["ssh"], "no trainee access was set up"
        stop = threading.Event()
        lines: list[str] = []
        server = threading.Thread(
            target=watch.serve, args=(docker_client, DRILL, lines.append, stop, 1.0)
        )
        server.start()
        try:
            asked = subprocess.run(
                [*shlex.split(trainee["access"]["ssh"]), "check-my-solution"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        finally:
            stop.set()
            server.join(30)
        assert asked.returncode == 0, asked.stdout + asked.stderr
        assert "t02: not yet (attempt 1): the backup failed" in asked.stdout
        assert "blocked-egress" not in asked.stdout

        board = _invoke("status").output
        assert "t01      fixed           2     1" in board
        assert "t02      working         1     0" in board
        assert "agent-stopped" not in board

        # A reset: a fresh lab, broken the same way, reached with the same SSH line.
        assert f"t02: fresh lab {LABS[1]}" in _invoke("reset", "t02").output
        again = subprocess.run(
            [*shlex.split(trainee["access"]["ssh"]), "cat", "/etc/motd"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "ExtensionSnapshotFailedNoNetwork" in again.stdout
        assert "t02      working         1     0      1" in _invoke("status").output

        ended = _invoke("end", "--out", str(state_dir.parent / "debrief"))
        assert "t01: agent-stopped (fixed at" in ended.output
        assert "t02: blocked-egress (not fixed)" in ended.output
        for written in ("debrief.json", "roster.txt", "drill.json"):
            assert (state_dir.parent / "debrief" / written).exists(), written
    finally:
        for lab in LABS:
            labs.down(docker_client, lab)
    for lab in LABS:
        assert _labelled(docker_client, lab) == []
    assert not (state_dir / "drills" / DRILL).exists()
    assert not any((state_dir / lab).exists() for lab in LABS)
