"""Real-lab fixtures: a Docker engine, the images, and labs that are always removed.

Every test here runs the real thing: systemd guests with Debian's waagent packages,
dnsmasq, the fabric emulator and Azurite. Labs get a per-run name so a CI run never
touches a lab a person left running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest
import testinfra
from azure.storage.blob import BlobServiceClient

from lab.azure_sdk import compute_client
from lab.platform.backup.azure_storage import DEV_ACCOUNT_KEY as AZURITE_KEY
from lab.platform.backup.azure_storage import DEV_ACCOUNT_NAME as AZURITE_ACCOUNT
from lab.platform.roster import Roster
from lab.provision import engine
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.images import AGENT_FLAVORS
from lab.provision.spec import VmSpec, lab_spec
from tests import engine2 as second_engine

pytestmark = pytest.mark.integration

RUN_ID = os.getpid()


@dataclass
class RunningLab:
    """A lab brought up for tests, with handles on everything a test looks at."""

    client: docker.DockerClient
    roster: Roster

    @property
    def name(self) -> str:
        return self.roster.lab

    @property
    def fabric(self) -> FabricClient:
        return FabricClient(self.roster.fabric_ip)

    def host(self, vm: str) -> testinfra.host.Host:
        return testinfra.get_host(f"docker://{self.roster.guest_by_name(vm).container}")  # type: ignore[union-attr]

    def storage(self) -> BlobServiceClient:
        """The lab's Azurite, as the Azure SDK sees it (from the host, over the lab bridge)."""
        return BlobServiceClient(
            account_url=f"http://{self.roster.storage_ip}:10000/{AZURITE_ACCOUNT}",
            credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
        )

    def compute(self):  # type: ignore[no-untyped-def]
        arm = labs.arm_endpoint(self.client, self.name)
        return compute_client(arm.url, arm.token, arm.subscription_id, arm.ca_file), arm


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    client = engine.ensure_engine()
    engine.raise_inotify_limit()
    return client


def _bring_up(client: docker.DockerClient, name: str, vms: tuple[VmSpec, ...]) -> RunningLab:
    spec = lab_spec(name, tuple(f"{vm.name}:agent={vm.agent}" for vm in vms))
    roster = labs.up(client, spec, lambda _: None)
    return RunningLab(client=client, roster=roster)


AGENT_VMS = tuple(
    VmSpec(name="vm" + version.replace(".", "-")[:12].rstrip("-"), agent=version)
    for version in AGENT_FLAVORS
)


@pytest.fixture(scope="session")
def agents_lab(docker_client: docker.DockerClient) -> Iterator[RunningLab]:
    """One lab with a guest per agent version (2.2.47, 2.7.3.0, 2.12.0.2)."""
    running = _bring_up(docker_client, f"it{RUN_ID}", AGENT_VMS)
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


@pytest.fixture(scope="session")
def second_lab(docker_client: docker.DockerClient) -> Iterator[RunningLab]:
    running = _bring_up(docker_client, f"it{RUN_ID}b", (VmSpec("vm1"),))
    try:
        yield running
    finally:
        labs.down(docker_client, running.name)


@pytest.fixture(scope="session")
def engine2(docker_client: docker.DockerClient) -> Iterator[second_engine.Engine2]:
    """A second Docker engine on this machine (``.url``, ``.client``): its own socket,
    data root and exec root; stopped, with every container and network it held removed,
    when the session ends. See tests/engine2.py for what it does to the first engine's
    firewall rules and why."""
    with second_engine.running(docker_client) as running:
        yield running
