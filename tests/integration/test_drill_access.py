"""A trainee's access on real labs: their own SSH port and key, the banner, the shell
audit, and platform credentials that work on their lab only.

Two one-VM labs stand for two trainees of one drill (``drb...-t01``, ``-t02``); each gets
:func:`lab.drill.access.grant_access` as ``drill start`` gives it. Both labs are always
removed, and with them the forwarders (checked by label).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests

from lab.azure_sdk import compute_client
from lab.drill import access, forwarder, history
from lab.drill.state import Access, Symptom
from lab.platform.control_auth import bearer
from lab.platform.roster import CONTROL_PORT
from lab.provision import lab as labs
from lab.provision.labels import LAB_LABEL
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration

VM = "vm1"
SYMPTOM = Symptom(
    error_code="GuestAgentSnapshotTaskStatusError",
    message="Could not communicate with the VM agent for snapshot status",
)


@dataclass
class TraineeLab:
    lab: RunningLab
    access: Access
    files: access.TraineeFiles

    @property
    def port(self) -> int:
        return int((self.access.model_extra or {})["port"])

    def env(self) -> dict[str, str]:
        found = {}
        for line in self.files.env_file.read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                found[name] = shlex.split(value)[0] if value else ""
        return found

    def ssh(self, *remote: str) -> subprocess.CompletedProcess[str]:
        argv = shlex.split(self.access.ssh)
        argv[1:1] = ["-o", "BatchMode=yes"]
        return subprocess.run(
            [*argv, *remote], capture_output=True, text=True, timeout=60, check=False
        )

    def type_lines(self, lines: list[str], pause: float = 1.5) -> str:
        """Log in on a terminal and type ``lines`` one by one, as a person would."""
        argv = shlex.split(self.access.ssh)
        argv[1:1] = ["-o", "BatchMode=yes", "-tt"]
        with subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        ) as session:
            assert session.stdin is not None
            for line in lines:
                time.sleep(pause)
                session.stdin.write(line.encode() + b"\n")
                session.stdin.flush()
            out, _ = session.communicate(timeout=60)
        return out.decode(errors="replace")


def _trainee(client: docker.DockerClient, root: Path, trainee_id: str) -> Iterator[TraineeLab]:
    running = _bring_up(client, f"drb{RUN_ID}-{trainee_id}", (VmSpec(VM),))
    try:
        granted = access.grant_access(client, root, trainee_id, running.roster, SYMPTOM)
        yield TraineeLab(running, granted, access.trainee_files(root, trainee_id))
    finally:
        labs.down(client, running.name)
        left = client.containers.list(all=True, filters={"label": f"{LAB_LABEL}={running.name}"})
        assert not left, [c.name for c in left]


@pytest.fixture(scope="module")
def drill_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drill")


@pytest.fixture(scope="module")
def t01(docker_client: docker.DockerClient, drill_root: Path) -> Iterator[TraineeLab]:
    yield from _trainee(docker_client, drill_root, "t01")


@pytest.fixture(scope="module")
def t02(
    docker_client: docker.DockerClient, drill_root: Path, t01: TraineeLab
) -> Iterator[TraineeLab]:
    yield from _trainee(docker_client, drill_root, "t02")


def test_trainee_logs_in_with_their_key_and_sees_the_symptom(t01: TraineeLab) -> None:
    assert forwarder.greets("127.0.0.1", t01.port)  # the guest's sshd, through the relay
    done = t01.ssh("cat /etc/motd; sudo -n waagent --version | head -n1; hostname")
    assert done.returncode == 0, done.stderr
    assert SYMPTOM.error_code in done.stdout and SYMPTOM.message in done.stdout
    assert "WALinuxAgent-2.7.3.0" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == VM
    assert t01.files.banner.read_text() in done.stdout
    # The key and the env file are the trainee's alone on the host.
    assert t01.files.private_key.stat().st_mode & 0o077 == 0
    assert t01.files.env_file.stat().st_mode & 0o077 == 0


def test_a_trainees_key_opens_only_their_own_vm(t01: TraineeLab, t02: TraineeLab) -> None:
    argv = shlex.split(t01.access.ssh)
    argv[argv.index("-p") + 1] = str(t02.port)
    # t02's host key under t02's alias: the refusal below is the key, not the host key.
    argv[argv.index(f"HostKeyAlias={t01.lab.name}")] = f"HostKeyAlias={t02.lab.name}"
    argv[argv.index(f"UserKnownHostsFile={t01.files.known_hosts}")] = (
        f"UserKnownHostsFile={t02.files.known_hosts}"
    )
    done = subprocess.run(
        [argv[0], "-o", "BatchMode=yes", *argv[1:], "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 255 and "Permission denied" in done.stderr, done.stderr
    assert t02.ssh("true").returncode == 0


def test_commands_typed_at_a_prompt_are_collected(t01: TraineeLab) -> None:
    typed = ["echo audit-one", "sudo -i", "systemctl is-active walinuxagent", "exit", "exit"]
    out = t01.type_lines(typed)
    assert "audit-one" in out and "active" in out, out
    found = history.collect_commands(t01.lab.client, t01.lab.roster, VM)
    seen = [(c.user, c.command) for c in found]
    assert ("azureuser", "echo audit-one") in seen, seen
    assert ("azureuser", "sudo -i") in seen, seen
    assert ("root", "systemctl is-active walinuxagent") in seen, seen
    # By the time each was typed: `sudo -i` before the commands of its root shell.
    assert seen.index(("azureuser", "sudo -i")) < seen.index(
        ("root", "systemctl is-active walinuxagent")
    ), seen
    assert all(c.at.endswith("Z") for c in found)


def _token(env: dict[str, str]) -> str:
    answer = requests.get(
        env["IDENTITY_ENDPOINT"],
        params={"resource": "https://management.azure.com/", "api-version": "2019-08-01"},
        headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
        verify=env["REQUESTS_CA_BUNDLE"],
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def test_platform_credentials_work_on_their_own_lab_only(t01: TraineeLab, t02: TraineeLab) -> None:
    own, other = t01.env(), t02.env()
    assert own["SNAPLAB_VM"] == VM and own["ARM_ENDPOINT"] != other["ARM_ENDPOINT"]
    compute = compute_client(
        own["ARM_ENDPOINT"], own["IDENTITY_HEADER"], own["AZURE_SUBSCRIPTION_ID"],
        own["REQUESTS_CA_BUNDLE"],
    )  # fmt: skip
    view = compute.virtual_machines.instance_view(own["AZURE_RESOURCE_GROUP"], VM)
    assert view.vm_agent is not None
    token = _token(own)
    vm_url = (
        f"/subscriptions/{own['AZURE_SUBSCRIPTION_ID']}/resourceGroups/"
        f"{own['AZURE_RESOURCE_GROUP']}/providers/Microsoft.Compute/virtualMachines/{VM}"
        "?api-version=2024-07-01"
    )
    mine = requests.get(
        own["ARM_ENDPOINT"] + vm_url, headers=bearer(token), verify=own["REQUESTS_CA_BUNDLE"],
        timeout=10,
    )  # fmt: skip
    assert mine.status_code == 200, mine.text
    # t01's identity header and its JWT on t02's twin: refused as ARM refuses.
    other_url = other["ARM_ENDPOINT"] + vm_url.replace(
        own["AZURE_SUBSCRIPTION_ID"], other["AZURE_SUBSCRIPTION_ID"]
    )
    for credential in (token, own["IDENTITY_HEADER"]):
        refused = requests.get(
            other_url, headers=bearer(credential), verify=other["REQUESTS_CA_BUNDLE"], timeout=10
        )
        assert refused.status_code == 401, refused.text
    stolen = requests.get(
        other["IDENTITY_ENDPOINT"],
        params={"resource": "https://management.azure.com/", "api-version": "2019-08-01"},
        headers={"X-IDENTITY-HEADER": own["IDENTITY_HEADER"]},
        verify=other["REQUESTS_CA_BUNDLE"],
        timeout=10,
    )
    assert stolen.status_code in (400, 401, 403), stolen.text
    # Nor on the fabric's control API (the trainer's), which the host can reach.
    for lab in (t01, t02):
        url = f"http://{lab.lab.roster.fabric_ip}:{CONTROL_PORT}/control/v1/vms/{VM}/power"
        for credential in (token, own["IDENTITY_HEADER"]):
            answer = requests.get(url, headers=bearer(credential), timeout=10)
            assert answer.status_code == 401, answer.text


def test_revoking_closes_the_port_and_down_removes_the_forwarder(
    docker_client: docker.DockerClient, drill_root: Path
) -> None:
    gen = _trainee(docker_client, drill_root, "t03")
    t03 = next(gen)
    assert t03.ssh("true").returncode == 0
    assert access.revoke_access(docker_client, t03.lab.name, "t03") == 1
    assert t03.ssh("true").returncode == 255
    assert not forwarder.forwarders(docker_client, t03.lab.name)
    # Granted again (a reset), then the lab goes down: the forwarder goes with it.
    again = access.grant_access(docker_client, drill_root, "t03", t03.lab.roster, SYMPTOM)
    assert again.ssh != "" and forwarder.forwarders(docker_client, t03.lab.name)
    with pytest.raises(StopIteration):
        next(gen)  # down, and the check that nothing of the lab is left
