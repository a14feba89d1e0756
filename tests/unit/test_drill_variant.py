"""The ``drill`` run variant's pieces that need no lab: names, the trainee's env and SSH."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from lab.provision.labels import LAB_NAME_PATTERN
from lab.runner import plan_run
from lab.runner.drill_phases import (
    DRILL_PHASES,
    TraineeTarget,
    drill_name_for,
    read_env_file,
    trainee_env,
)
from lab.runner.variants import parse_variant


def test_the_variant_parses_and_has_its_lifecycle() -> None:
    assert parse_variant("drill", "--variant 'drill'").name == "drill"
    (item,) = plan_run(["agent-stopped@drill"], [])
    assert item.id == "agent-stopped@drill"
    assert [p.name for p in item.phases] == [p.name for p in DRILL_PHASES]
    assert [p.name for p in DRILL_PHASES if p.final] == ["drill-end"]


@pytest.mark.parametrize(
    "lab", ["run-agent-stopped", "run-extension-upd-1a2b3", "a", "ci-extensions-disabled"]
)
def test_drill_names_fit(lab: str) -> None:
    name = drill_name_for(lab)
    assert len(name) <= 16
    assert LAB_NAME_PATTERN.match(f"{name}-t01")
    assert name == drill_name_for(lab)


def test_env_file_is_read_as_the_shell_would(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text(
        "# comment\nexport ARM_ENDPOINT=https://127.0.0.1:4443\n"
        "export IDENTITY_HEADER='a b'\nnot an export\n"
    )
    assert read_env_file(env) == {
        "ARM_ENDPOINT": "https://127.0.0.1:4443",
        "IDENTITY_HEADER": "a b",
    }


def test_trainee_env_drops_the_callers_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPLAB_ARM_TOKEN", "trainer-token")
    monkeypatch.setenv("IDENTITY_HEADER", "someone-else")
    monkeypatch.setattr("lab.azcli.install.installed", lambda: None)
    mine = {
        "ARM_ENDPOINT": "https://x",
        "IDENTITY_ENDPOINT": "https://x/id",
        "IDENTITY_HEADER": "trainee-token",
        "REQUESTS_CA_BUNDLE": "/b",
        "SNAPLAB_VM": "vm1",
    }
    env = trainee_env(mine, "dra-x-t01", "vm1")
    assert env["IDENTITY_HEADER"] == "trainee-token"
    assert "SNAPLAB_ARM_TOKEN" not in env
    assert "SNAPLAB_LAB" not in env
    assert env["SNAPLAB_VM"] == "vm1"


def test_guest_steps_go_through_the_trainees_ssh_line() -> None:
    line = "ssh -F none -i /k/id_ed25519 -o HostKeyAlias=lab -p 2201 azureuser@127.0.0.1"
    from lab.provision.ssh_keys import LabSshFiles

    target = TraineeTarget(
        "vm1", "127.0.0.1", LabSshFiles(Path("/x")), command=tuple(shlex.split(line))
    )
    argv = target.step_argv()
    assert argv[:5] == ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    assert argv[5:-1] == shlex.split(line)[1:]
    assert "sudo -n -i bash" in argv[-1]
