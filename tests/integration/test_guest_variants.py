"""The checks and the faults on guests shaped like other distributions, for real: one
lab per guest variant (netplan + systemd-networkd as Ubuntu, NetworkManager as RHEL, the
agent's unit named ``waagent.service`` as RHEL and SUSE).

On each: a backup completes (the agent found the WireServer through that network stack),
the healthy VM diagnoses clean, ``agent-stopped`` is found and cleared by starting the
agent's own unit again, and ``dhcp-disabled`` is found. No backup of the broken VM is
needed: the faults and the diagnosis are what differ between variants. A variant's image
is built on first use (lab.provision.images), inside this test's lab start.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest

from lab.diagnosis import Diagnosis, diagnose
from lab.faults import FaultTarget, fault_by_id
from lab.platform.roster import Roster
from lab.provision import backups
from lab.provision import lab as labs
from lab.provision.spec import lab_spec

pytestmark = pytest.mark.integration

VARIANTS = ("netplan", "networkmanager", "waagent-unit")
# What the checks must have seen on each (evidence that they looked at the right stack).
SEEN = {
    "netplan": ("guest.dhcp", "systemd-networkd DHCP=ipv4"),
    "networkmanager": ("guest.dhcp", "NetworkManager ipv4.method auto"),
    "waagent-unit": ("guest.agent_running", "waagent: active (running)"),
}
UNIT = {"netplan": "walinuxagent", "networkmanager": "walinuxagent", "waagent-unit": "waagent"}


@dataclass
class VariantLab:
    client: docker.DockerClient
    roster: Roster
    variant: str

    def guest(self, script: str) -> str:
        container = self.roster.guest_by_name("vm1").container  # type: ignore[union-attr]
        done = subprocess.run(
            ["docker", "exec", container, "bash", "-e", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def diagnose(self) -> Diagnosis:
        return diagnose(self.client, self.roster, "vm1")

    def inject(self, fault: str) -> None:
        fault_by_id(fault).inject(FaultTarget(self.client, self.roster, "vm1"))


@pytest.fixture(scope="module", params=VARIANTS)
def variant_lab(
    request: pytest.FixtureRequest, docker_client: docker.DockerClient
) -> Iterator[VariantLab]:
    variant = str(request.param)
    name = f"gv{variant[:4].replace('-', '')}{os.getpid() % 100000}"
    spec = lab_spec(name, (f"vm1:agent=2.7.3.0,guest={variant}",))
    try:
        roster = labs.up(docker_client, spec, lambda _: None)
        yield VariantLab(docker_client, roster, variant)
    finally:
        labs.down(docker_client, name)


def failing(diagnosis: Diagnosis) -> list[str]:
    return [f"{c.id}: {c.detail}" for c in diagnosis.checks if not c.passed]


def detail(diagnosis: Diagnosis, check: str) -> str:
    return next(c.detail for c in diagnosis.checks if c.id == check)


def wait_healthy(lab: VariantLab, timeout: float = 90.0) -> Diagnosis:
    deadline = time.monotonic() + timeout
    while True:
        found = lab.diagnose()
        if not found.causes and not failing(found):
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{lab.variant}: not healthy: {found.cause_ids} {failing(found)}")
        time.sleep(3)


def test_variant_guest_backs_up_diagnoses_clean_and_its_faults_are_found(
    variant_lab: VariantLab,
) -> None:
    lab = variant_lab
    job = backups.follow(lab.roster, backups.start(lab.roster, "vm1"), lambda _: None)
    assert job["status"] == "Completed", job

    healthy = lab.diagnose()
    assert healthy.cause_ids == () and failing(healthy) == [], failing(healthy)
    check, seen = SEEN[lab.variant]
    assert seen in detail(healthy, check)

    lab.inject("agent-stopped")
    stopped = lab.diagnose()
    assert stopped.cause_ids == ("agent-stopped",), failing(stopped)
    assert detail(stopped, "guest.agent_running").startswith(f"{UNIT[lab.variant]}: inactive")
    lab.guest(f"systemctl start {UNIT[lab.variant]}")
    wait_healthy(lab)

    lab.inject("dhcp-disabled")
    found = lab.diagnose()
    assert found.cause_ids == ("dhcp-disabled",), failing(found)
    assert "guest firewall drops DHCP" in detail(found, "guest.dhcp")
