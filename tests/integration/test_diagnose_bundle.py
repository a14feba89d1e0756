"""``diagnose --bundle`` on bundles collected from a real lab: a healthy VM (agents
2.7.3.0 and 2.12.0.2, after a completed backup) names no cause (2.2.47: only stale-agent);
the 2.7.3.0 VM broken by hand as root would break it (``systemctl stop`` the agent;
``Extensions.Enabled=n``) names exactly that cause, with the bundle's lines as evidence.
The bundles are the real agent's ``waagent -collect-logs`` (``snaplab collect-logs``;
2.2.47 has no such command, so snaplab makes the same layout).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from lab.bundle.collect import collect_logs
from lab.bundle.diagnose import BundleDiagnosis, diagnose_bundle
from lab.bundle.reader import open_bundle
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.spec import lab_spec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(docker_client: docker.DockerClient) -> Iterator[Roster]:
    name = f"cdg{os.getpid()}"
    vms = ("vm1:agent=2.7.3.0", "vm2:agent=2.12.0.2", "vm3:agent=2.2.47")
    roster = labs.up(docker_client, lab_spec(name, vms), lambda _: None)
    try:
        for vm in ("vm1", "vm2", "vm3"):
            job = backups.follow(roster, backups.start(roster, vm), lambda _: None)
            assert job["status"] == "Completed", job
        yield roster
    finally:
        labs.down(docker_client, name)


def guest(roster: Roster, script: str) -> None:
    container = roster.guest_by_name("vm1").container  # type: ignore[union-attr]
    done = subprocess.run(
        ["docker", "exec", container, "bash", "-e", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def bundle_of(
    client: docker.DockerClient, roster: Roster, tmp_path: Path, vm: str = "vm1"
) -> BundleDiagnosis:
    collected = collect_logs(client, roster.lab, vm)
    path = tmp_path / "logs.zip"
    path.write_bytes(collected.data)
    return diagnose_bundle(open_bundle(path))


@pytest.mark.parametrize(
    ("vm", "causes"),
    [("vm1", ()), ("vm2", ()), ("vm3", ("stale-agent",))],
    ids=["2.7.3.0", "2.12.0.2", "2.2.47"],
)
def test_healthy_vm_bundle_names_no_cause(
    docker_client: docker.DockerClient,
    lab: Roster,
    tmp_path: Path,
    vm: str,
    causes: tuple[str, ...],
) -> None:
    """2.2.47 is below Azure's minimum supported agent: stale-agent, as the lab's own
    diagnosis of that VM says; nothing else, and only benign noise in its log."""
    found = bundle_of(docker_client, lab, tmp_path, vm)
    assert found.cause_ids == causes, found.to_json()
    assert found.log_errors == (), found.log_errors


def test_extensions_disabled_bundle(
    docker_client: docker.DockerClient, lab: Roster, tmp_path: Path
) -> None:
    guest(lab, "sed -i 's/^Extensions.Enabled=.*/Extensions.Enabled=n/' /etc/waagent.conf")
    try:
        found = bundle_of(docker_client, lab, tmp_path)
        assert found.cause_ids == ("extensions-disabled",)
        assert any(
            line.startswith("etc/waagent.conf:") and "Extensions.Enabled=n" in line
            for line in found.causes[0].evidence
        )
    finally:
        guest(lab, "sed -i 's/^Extensions.Enabled=.*/Extensions.Enabled=y/' /etc/waagent.conf")


def test_stopped_agent_bundle(
    docker_client: docker.DockerClient, lab: Roster, tmp_path: Path
) -> None:
    guest(lab, "systemctl stop walinuxagent")
    try:
        found = bundle_of(docker_client, lab, tmp_path)
        assert found.cause_ids == ("agent-stopped",)
        assert any(
            line.startswith("var/log/waagent.log:") and "forwarding signal 15" in line
            for line in found.causes[0].evidence
        )
    finally:
        guest(lab, "systemctl start walinuxagent")
