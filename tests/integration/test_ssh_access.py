"""SSH into a real lab's guests, as an engineer reaches an Azure VM.

``snaplab ssh vm1 -- waagent --version`` prints the agent's version; the admin has
passwordless sudo; password and root logins are refused; the host key the client checks
is the one the host recorded out of band, and no two guests share one; a runbook guest
step runs in root's login shell over SSH; ``down`` removes the lab's key files.
"""

from __future__ import annotations

import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from lab.provision import lab as labs
from lab.provision.spec import VmSpec
from lab.provision.ssh_client import SSH_BINARY, SshTarget, lab_targets
from lab.provision.ssh_keys import LabSshFiles, lab_ssh_files, read_known_hosts
from lab.runbook import Step, StepPlace, run_steps
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ssh_lab(docker_client: docker.DockerClient) -> Iterator[RunningLab]:
    running = _bring_up(docker_client, f"ssh{RUN_ID}", (VmSpec("vm1"), VmSpec("vm2")))
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


def snaplab_ssh(lab: RunningLab, vm: str, *command: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "lab", "ssh", vm, "--lab", lab.name, "--", *command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_snaplab_ssh_runs_waagent_version(ssh_lab: RunningLab) -> None:
    done = snaplab_ssh(ssh_lab, "vm1", "waagent", "--version")
    assert done.returncode == 0, done.stderr
    assert "WALinuxAgent-2.7.3.0 running on debian" in done.stdout
    assert "Goal state agent: 2.7.3.0" in done.stdout


def test_the_admin_has_passwordless_sudo_and_exit_codes_come_back(ssh_lab: RunningLab) -> None:
    assert snaplab_ssh(ssh_lab, "vm1", "sudo", "-n", "true").returncode == 0
    whoami = snaplab_ssh(ssh_lab, "vm1", "id -un; sudo -n id -un")
    assert whoami.stdout.split() == ["azureuser", "root"]
    assert snaplab_ssh(ssh_lab, "vm1", "exit 7").returncode == 7


def test_unknown_vm_is_one_line_exit_2(ssh_lab: RunningLab) -> None:
    done = snaplab_ssh(ssh_lab, "vm9", "true")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"Error: lab '{ssh_lab.name}' has no VM named 'vm9' (it has: vm1, vm2)"
    ]


def refused(target: SshTarget, user: str, *options: str) -> str:
    """ssh's complaint when ``options`` make it try a way in the guest must refuse."""
    argv = target.argv(["true"], batch=True)
    at = argv.index(f"{target.user}@{target.address}")
    argv = [*argv[:at], *options, f"{user}@{target.address}", "true"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 255, done
    return done.stderr


def test_password_and_root_logins_are_refused(ssh_lab: RunningLab) -> None:
    target = lab_targets(ssh_lab.roster)["vm1"]
    password = refused(
        target,
        "azureuser",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "PreferredAuthentications=password,keyboard-interactive",
    )
    assert "Permission denied (publickey)" in password
    assert "Permission denied" in refused(target, "root")
    config = snaplab_ssh(ssh_lab, "vm1", "sudo -n sshd -T")
    settings = dict(line.split(" ", 1) for line in config.stdout.splitlines() if " " in line)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] == "no"


def test_host_keys_are_the_recorded_ones_and_every_guest_has_its_own(
    ssh_lab: RunningLab, tmp_path: Path
) -> None:
    recorded = read_known_hosts(lab_ssh_files(ssh_lab.name))
    addresses = [g.ip for g in ssh_lab.roster.guests]
    assert sorted(recorded) == sorted(addresses)
    assert len(set(recorded.values())) == len(addresses)  # no key baked into the image
    for address in addresses:
        scan = subprocess.run(
            [str(SSH_BINARY.with_name("ssh-keyscan")), "-t", "ed25519", address],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        served = scan.stdout.split(maxsplit=1)[1].strip()
        assert served == recorded[address]
    # With another key on record, the client refuses to go on (no trust on first use).
    target = lab_targets(ssh_lab.roster)["vm1"]
    wrong = LabSshFiles(tmp_path / "ssh")
    wrong.folder.mkdir()
    wrong.known_hosts.write_text(f"{target.address} {recorded[addresses[1]]}\n")
    argv = target.argv(["true"], batch=True)
    argv[argv.index(f"UserKnownHostsFile={target.files.known_hosts}")] = (
        f"UserKnownHostsFile={wrong.known_hosts}"
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 255 and "Host key verification failed" in done.stderr


def test_the_lab_key_is_private_and_the_guests_copy_is_the_admins(ssh_lab: RunningLab) -> None:
    files = lab_ssh_files(ssh_lab.name)
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.folder.stat().st_mode) == 0o700
    done = snaplab_ssh(ssh_lab, "vm1", "stat -c '%U %a' ~/.ssh ~/.ssh/authorized_keys")
    assert done.stdout.split("\n")[:2] == ["azureuser 700", "azureuser 600"]
    keys = snaplab_ssh(ssh_lab, "vm1", "cat ~/.ssh/authorized_keys").stdout
    assert keys.split()[:2] == files.public_key.read_text().split()[:2]


def test_a_guest_step_runs_in_roots_login_shell_over_ssh(ssh_lab: RunningLab) -> None:
    place = StepPlace(
        guests=lab_targets(ssh_lab.roster), default_vm="vm1", platform_env={}, cwd=Path("/")
    )
    code = 'id -un; pwd; echo "$HOME"; read -r x || echo "stdin empty"\nhostname\n'
    steps = [
        Step(1, "guest", "bash", code),
        Step(5, "guest", "bash", "hostname\n", vm="vm2"),
        Step(9, "guest", "bash", "false\necho never\n"),
    ]
    result = run_steps(steps, place, timeout=60)
    assert [r.exit_code for r in result.results] == [0, 0, 1]
    assert result.results[0].output == "root\n/root\n/root\nstdin empty\nvm1\n"
    assert result.results[1].output == "vm2\n"
    assert "never" not in result.results[2].output


def test_zz_down_removes_the_key_files(ssh_lab: RunningLab) -> None:
    files = lab_ssh_files(ssh_lab.name)
    assert files.private_key.exists()
    labs.down(ssh_lab.client, ssh_lab.name)
    assert not files.folder.exists()
