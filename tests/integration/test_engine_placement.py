"""Labs placed on two Docker engines of this machine, through the CLI, for real.

A two-trainee drill given both engines puts one lab on each; ``drill check`` of the
trainee on the second engine runs a real backup there; ``snaplab down LAB`` finds a lab on
the second engine; ``drill end`` removes what is left on both. ``snaplab run
ID@drill --engine <second>`` proves a whole drill variant (trainee SSH and credentials,
the ARM twin driving its own engine) on the second engine alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner, Result

from lab.cli import cli
from lab.provision import lab as labs
from lab.provision.labels import LAB_LABEL
from lab.runner import lab_name
from lab.runner.drill_phases import drill_name_for
from tests import engine2 as second_engine

pytestmark = pytest.mark.integration

DRILL = f"dre{os.getpid() % 10000}"
T01, T02 = f"{DRILL}-t01", f"{DRILL}-t02"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj={})


def _ok(*args: str) -> Result:
    result = _invoke(*args)
    assert result.exit_code == 0, f"snaplab {' '.join(args)}: {result.output}"
    return result


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "state"
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(folder))
    monkeypatch.chdir(tmp_path)
    yield folder


def _labelled(client: docker.DockerClient, prefix: str) -> list[str]:
    found = client.containers.list(all=True, filters={"label": LAB_LABEL})
    names = [c.name for c in found if str(c.labels.get(LAB_LABEL, "")).startswith(prefix)]
    networks = client.networks.list(filters={"label": LAB_LABEL})
    return names + [n.name for n in networks if n.name.startswith(f"snaplab-{prefix}")]


def test_a_drill_spreads_over_two_engines_and_ends_on_both(
    docker_client: docker.DockerClient, engine2: second_engine.Engine2, state_dir: Path
) -> None:
    try:
        started = _ok(
            "drill", "start", "--trainees", "2", "--scenario", "agent-stopped",
            "--name", DRILL, "--time-limit", "30m",
            "--engine", "default", "--engine", engine2.url,
        )  # fmt: skip
        assert "on 2 engines" in " ".join(started.output.split())
        state = json.loads((state_dir / "drills" / DRILL / "drill.json").read_text())
        engines_of = {t["id"]: t["engine"] for t in state["trainees"]}
        assert engines_of == {"t01": "", "t02": engine2.url}
        assert T01 in labs.lab_names(docker_client) and T02 not in labs.lab_names(docker_client)
        assert T02 in labs.lab_names(engine2.client)
        remembered = json.loads((state_dir / "engines.json").read_text())
        assert engine2.url in remembered

        checked = _ok("drill", "check", "t02", "--drill", DRILL)
        assert "t02: not yet (attempt 1): the backup failed:" in checked.output

        # Lab commands find the lab on the engine it went to.
        (vm,) = json.loads(_ok("status", T02, "--json").output)["vms"]
        assert (vm["name"], vm["power_state"]) == ("vm1", "running")
        # ``down LAB`` finds the lab on the engine it went to.
        removed = _ok("down", T02)
        assert f"of {T02}" in removed.output
        assert T02 not in labs.lab_names(engine2.client)

        ended = _ok("drill", "end", "--drill", DRILL)
        assert "agent-stopped" in ended.output
        assert _labelled(docker_client, DRILL) == []
        assert _labelled(engine2.client, DRILL) == []
    finally:
        labs.down(docker_client, T01)
        labs.down(engine2.client, T02)


def test_a_run_places_its_drill_variant_on_the_second_engine(
    docker_client: docker.DockerClient, engine2: second_engine.Engine2, state_dir: Path
) -> None:
    journal = state_dir.parent / "journal.json"
    prefix = f"rne{os.getpid() % 10000}"
    trainee_lab = f"{drill_name_for(lab_name(prefix, 'agent-stopped@drill'))}-t01"
    began = int(time.time()) - 1
    try:
        result = _invoke(
            "run", "agent-stopped@drill", "--engine", engine2.url,
            "--lab-prefix", prefix, "--journal", str(journal),
        )  # fmt: skip
        record = json.loads(journal.read_text())["scenarios"][0]
        phases = {p["name"]: p for p in record["phases"]}
        assert result.exit_code == 0, json.dumps(phases, indent=1)[-3000:]
        assert phases["drill-check-fixed"]["status"] == "passed"
        created = engine2.client.events(
            since=began, until=int(time.time()) + 1, decode=True, filters={"event": "create"}
        )
        on_second = {e.get("Actor", {}).get("Attributes", {}).get(LAB_LABEL) for e in created}
        assert trainee_lab in on_second
        assert _labelled(docker_client, prefix) == []
        assert _labelled(engine2.client, prefix) == []
    finally:
        for client in (docker_client, engine2.client):
            for lab in labs.lab_names(client):
                if lab.startswith(prefix):
                    labs.down(client, lab)
