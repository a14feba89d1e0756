"""``diagnose`` on a real lab: a healthy VM (agent 2.7.3.0, after one completed backup,
so the VMSnapshot handler is installed) has no cause and passes every check — also
through ``pytest checks --hosts=docker://<container>`` — and three faults applied by
hand with ``docker exec`` (as root at the VM's console would) are each diagnosed as
exactly their cause, and cleared again when undone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from lab.diagnosis import Diagnosis, diagnose
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.spec import lab_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HANDLER = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-*"
PACKAGE = "/var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux__*.zip"


@pytest.fixture(scope="module")
def healthy(docker_client: docker.DockerClient) -> Iterator[Roster]:
    """A one-VM lab whose first backup completed (the extension is installed)."""
    name = f"dg{os.getpid()}"
    roster = labs.up(docker_client, lab_spec(name, ("vm1:agent=2.7.3.0",)), lambda _: None)
    try:
        job = backups.follow(roster, backups.start(roster, "vm1"), lambda _: None)
        assert job["status"] == "Completed", job
        yield roster
    finally:
        labs.down(docker_client, name)


def guest(roster: Roster, script: str) -> str:
    """Run a script in vm1 as root, from outside (not through the agent)."""
    container = roster.guest_by_name("vm1").container  # type: ignore[union-attr]
    done = subprocess.run(
        ["docker", "exec", container, "bash", "-e", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def failing(diagnosis: Diagnosis) -> list[str]:
    return [f"{c.id}: {c.detail}" for c in diagnosis.checks if not c.passed]


def wait_healthy(client: docker.DockerClient, roster: Roster, timeout: float = 90.0) -> Diagnosis:
    """Diagnose until nothing fails (the agent needs a few cycles after a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        found = diagnose(client, roster, "vm1")
        if not found.causes and not failing(found):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"vm1 did not become healthy: {found.cause_ids} {failing(found)}")
        time.sleep(3)


def test_healthy_vm_has_no_cause_and_passes_every_check(
    docker_client: docker.DockerClient, healthy: Roster
) -> None:
    found = diagnose(docker_client, healthy, "vm1")
    assert found.cause_ids == ()
    assert failing(found) == []
    assert {c.id for c in found.checks} >= {"guest.handler_files", "platform.nsg_egress"}


def test_pytest_entry_passes_on_the_healthy_guest(healthy: Roster) -> None:
    container = healthy.guest_by_name("vm1").container  # type: ignore[union-attr]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "checks",
            f"--hosts=docker://{container}",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_stopped_agent_is_agent_stopped(
    docker_client: docker.DockerClient, healthy: Roster
) -> None:
    guest(healthy, "systemctl stop walinuxagent")
    try:
        found = diagnose(docker_client, healthy, "vm1")
        assert found.cause_ids == ("agent-stopped",), failing(found)
        assert any("no waagent process" in e for e in found.causes[0].evidence)
    finally:
        guest(healthy, "systemctl start walinuxagent")
    wait_healthy(docker_client, healthy)


def test_extensions_disabled_is_extensions_disabled(
    docker_client: docker.DockerClient, healthy: Roster
) -> None:
    guest(
        healthy,
        "sed -i 's/^Extensions.Enabled=.*/Extensions.Enabled=n/' /etc/waagent.conf; "
        "grep -q '^Extensions.Enabled=n' /etc/waagent.conf "
        "|| echo Extensions.Enabled=n >> /etc/waagent.conf; systemctl restart walinuxagent",
    )
    try:
        found = diagnose(docker_client, healthy, "vm1")
        assert found.cause_ids == ("extensions-disabled",), failing(found)
    finally:
        guest(
            healthy,
            "sed -i 's/^Extensions.Enabled=n/Extensions.Enabled=y/' /etc/waagent.conf; "
            "systemctl restart walinuxagent",
        )
    wait_healthy(docker_client, healthy)


def test_broken_handler_script_is_broken_extension(
    docker_client: docker.DockerClient, healthy: Roster
) -> None:
    guest(
        healthy,
        f'printf "#!/bin/sh\\nif [ \\"$1\\" = enable\\n" > $(echo {HANDLER})/main/handle.sh',
    )
    try:
        found = diagnose(docker_client, healthy, "vm1")
        assert found.cause_ids == ("broken-extension",), failing(found)
        assert any("main/handle.sh" in e for e in found.causes[0].evidence)
    finally:
        guest(
            healthy,
            f"cd $(echo {HANDLER}) && python3 -c 'import sys, zipfile; "
            'zipfile.ZipFile(sys.argv[1]).extract("main/handle.sh", ".")\' '
            f"$(echo {PACKAGE}) && chmod u+x main/handle.sh",
        )
    wait_healthy(docker_client, healthy)
