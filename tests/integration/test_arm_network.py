"""Microsoft.Network on a real lab, with ``azure-mgmt-network`` only.

The VM's NSG is found from its NIC and lists Azure's default rules; an outbound ``Deny``
for the ``Storage`` tag (priority 100) makes the guest's own connection to the storage
account time out, while the guest still reaches its WireServer (platform traffic is not
subject to NSGs); deleting the rule restores storage. A ``Deny *`` leaves the WireServer
reachable too. The guest is looked at from inside (``docker exec``: the test's own
observation, not a step of the API). Teardown removes the rules with the lab.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import pytest
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import SecurityRule

from lab.azure_sdk import network_client
from lab.platform.host_rules import rule_comment
from lab.provision import lab as labs
from lab.provision.spec import VmSpec
from tests.integration.conftest import RUN_ID, RunningLab, _bring_up

pytestmark = pytest.mark.integration

VM = "vm1"


@dataclass
class Net:
    lab: RunningLab
    network: NetworkManagementClient
    group: str
    nsg: str


@pytest.fixture(scope="module")
def net(docker_client: docker.DockerClient) -> Iterator[Net]:
    running = _bring_up(docker_client, f"hd{RUN_ID}net"[:20], (VmSpec(VM),))
    try:
        arm = labs.arm_endpoint(docker_client, running.name)
        network = network_client(arm.url, arm.token, arm.subscription_id, arm.ca_file)
        (nic,) = [
            n
            for n in network.network_interfaces.list(arm.resource_group)
            if n.virtual_machine and str(n.virtual_machine.id).endswith(f"/virtualMachines/{VM}")
        ]
        assert nic.ip_configurations[0].private_ip_address == running.roster.guests[0].ip  # type: ignore[index]
        nsg = str(nic.network_security_group.id).rsplit("/", 1)[-1]  # type: ignore[union-attr]
        yield Net(running, network, arm.resource_group, nsg)
    finally:
        labs.down(docker_client, running.name)
    assert _lab_rules(running.name) == [], "the lab's NSG rules outlived it"


def _lab_rules(lab: str) -> list[str]:
    listing = subprocess.run(
        ["iptables", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True, check=False
    ).stdout
    return [line for line in listing.splitlines() if f'"{rule_comment(lab)}"' in line]


def _from_guest(net: Net, url: str) -> int:
    """curl's exit code for ``url`` from inside the guest (28: timed out)."""
    container = net.lab.client.containers.get(net.lab.roster.guests[0].container)
    code, _ = container.exec_run(
        ["curl", "-sS", "-o", "/dev/null", "--connect-timeout", "3", "--max-time", "5", url]
    )
    return int(code)


def _storage(net: Net) -> str:
    return f"http://{net.lab.roster.storage_ip}:10000/"


def _wireserver(net: Net) -> str:
    return f"http://{net.lab.roster.fabric_ip}/?comp=versions"


def _deny(priority: int, destination: str) -> SecurityRule:
    return SecurityRule(
        protocol="*",
        source_address_prefix="*",
        source_port_range="*",
        destination_address_prefix=destination,
        destination_port_range="*",
        access="Deny",
        priority=priority,
        direction="Outbound",
    )


def test_the_nsg_shows_azures_default_rules(net: Net) -> None:
    nsg = net.network.network_security_groups.get(net.group, net.nsg)
    assert nsg.security_rules == []
    names = {r.name: r.priority for r in nsg.default_security_rules or []}
    assert names["AllowInternetOutBound"] == 65001 and names["DenyAllOutBound"] == 65500
    assert len(names) == 6


def test_a_storage_deny_times_the_guest_out_until_it_is_deleted(net: Net) -> None:
    assert _from_guest(net, _storage(net)) == 0
    rules = net.network.security_rules
    rules.begin_create_or_update(net.group, net.nsg, "DenyStorage", _deny(100, "Storage")).result(
        timeout=60
    )
    try:
        assert _from_guest(net, _storage(net)) == 28  # dropped: the connection times out
        assert _from_guest(net, _wireserver(net)) == 0  # the platform is not subject to NSGs
        assert [r.name for r in rules.list(net.group, net.nsg)] == ["DenyStorage"]
    finally:
        rules.begin_delete(net.group, net.nsg, "DenyStorage").result(timeout=60)
    assert _from_guest(net, _storage(net)) == 0
    assert [r.name for r in rules.list(net.group, net.nsg)] == []


def test_deny_everything_still_leaves_the_wireserver(net: Net) -> None:
    rules = net.network.security_rules
    rules.begin_create_or_update(net.group, net.nsg, "DenyAllOut", _deny(4000, "*")).result(
        timeout=60
    )
    assert _from_guest(net, _storage(net)) == 28
    assert _from_guest(net, _wireserver(net)) == 0
    assert any("DenyAllOut" in line for line in _lab_rules(net.lab.name))
    # left in place: the lab's teardown must remove it (checked by the fixture)
