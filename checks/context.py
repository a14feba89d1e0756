"""The one object every check receives: which VM, how to reach its guest, and how to
ask the platform about it.

A context is built from a lab name and a VM name (:func:`context_for_vm`) or from a
guest container's own labels (:func:`context_from_container`, what ``pytest checks
--hosts=docker://<container>`` uses). What it carries is only what an engineer on a real
case has: a shell on the guest, the Azure SDKs against the VM's subscription (its NSG
read through Microsoft.Network), the backup jobs and the addresses the platform publishes.
Nothing in it says which fault, if any, was injected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import docker
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import VirtualMachineInstanceView
from azure.mgmt.network import NetworkManagementClient
from docker.errors import NotFound

from checks.host import GuestHost
from checks.nsg import NsgRule, vm_nsg_rules
from lab.azure_sdk import compute_client, network_client
from lab.errors import BadInput, UnknownVm
from lab.platform.roster import GuestEntry, Roster
from lab.platform.timescale import DEFAULT_TIME_SCALE, SNAPSHOT_SUBTASK_TIMEOUT
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.labels import LAB_LABEL, VM_LABEL

STORAGE_PORT = 10000  # Azurite's blob endpoint, the lab's stand-in for <account>.blob.core...


class Platform(Protocol):
    """What the platform tells about a VM: Azure SDK, backup jobs, NSG rules."""

    def instance_view(self, vm: str) -> VirtualMachineInstanceView: ...

    def jobs(self) -> Sequence[dict[str, Any]]:
        """Every backup job of the lab (all VMs), newest first."""
        ...

    def nsg_rules(self, vm: str) -> Sequence[NsgRule]:
        """The rules of the NSG on the VM's network interface (its own and the defaults)."""
        ...


@dataclass(frozen=True)
class GuestFacts:
    """What the platform publishes about where a guest's dependencies are, and how long
    it waits for it: the storage endpoint its disks live on, the snapshot sub-task
    timeout (in lab seconds) and the lab's time scale, by which a check turns the Azure
    windows it waits on (:mod:`checks.in_motion`) into lab seconds. In-guest checks get
    these and their ``host`` — nothing else."""

    storage_ip: str
    storage_port: int
    subtask_timeout_seconds: float
    time_scale: float = DEFAULT_TIME_SCALE


@dataclass(frozen=True)
class CheckContext:
    roster: Roster
    vm: str
    host: GuestHost
    platform: Platform
    subtask_timeout_seconds: float

    @property
    def guest(self) -> GuestEntry:
        entry = self.roster.guest_by_name(self.vm)
        if entry is None:  # constructors validate; this guards hand-made contexts
            raise UnknownVm(f"lab {self.roster.lab!r} has no VM {self.vm!r}")
        return entry

    @property
    def facts(self) -> GuestFacts:
        return GuestFacts(
            self.roster.storage_ip,
            STORAGE_PORT,
            self.subtask_timeout_seconds,
            self.roster.time_scale,
        )


class LabPlatform:
    """:class:`Platform` of a running lab: the ARM twin through the unmodified Azure SDKs
    (Compute, and Network for the NSG), and the fabric's job list."""

    def __init__(
        self,
        client: docker.DockerClient,
        roster: Roster,
    ) -> None:
        self._client = client
        self._roster = roster
        self._compute: ComputeManagementClient | None = None
        self._network: NetworkManagementClient | None = None
        self._resource_group = roster.resource_group
        self._views: dict[str, VirtualMachineInstanceView] = {}

    def instance_view(self, vm: str) -> VirtualMachineInstanceView:
        """Read once per VM: one diagnosis is one snapshot of the platform's opinion."""
        if vm not in self._views:
            self._views[vm] = self._sdk().virtual_machines.instance_view(self._resource_group, vm)
        return self._views[vm]

    def jobs(self) -> Sequence[dict[str, Any]]:
        return FabricClient(self._roster.fabric_ip).jobs()

    def nsg_rules(self, vm: str) -> Sequence[NsgRule]:
        if self._network is None:
            arm = labs.arm_endpoint(self._client, self._roster.lab)
            self._network = network_client(arm.url, arm.token, arm.subscription_id, arm.ca_file)
            self._resource_group = arm.resource_group
        return vm_nsg_rules(self._network, self._resource_group, vm)

    def _sdk(self) -> ComputeManagementClient:
        if self._compute is None:
            arm = labs.arm_endpoint(self._client, self._roster.lab)
            self._compute = compute_client(arm.url, arm.token, arm.subscription_id, arm.ca_file)
            self._resource_group = arm.resource_group
        return self._compute


def guest_session(client: docker.DockerClient, container: str) -> GuestHost:
    """One root shell in the guest for the whole diagnosis, at an engineer's raised
    priority (:mod:`checks.session`): a CPU-starved guest answers in seconds."""
    from checks.session import GuestSession

    return GuestSession(client, container)


def testinfra_host(container: str) -> GuestHost:
    """testinfra's docker backend on the guest container (``docker exec`` as root)."""
    import testinfra

    host: GuestHost = testinfra.get_host(f"docker://{container}")
    return host


def context_for(
    client: docker.DockerClient,
    roster: Roster,
    vm: str,
    host: GuestHost | None = None,
    platform: Platform | None = None,
) -> CheckContext:
    """The context for ``vm`` of the lab ``roster`` describes; UnknownVm if it has none."""
    entry = roster.guest_by_name(vm)
    if entry is None:
        known = ", ".join(g.name for g in roster.guests) or "none"
        raise UnknownVm(f"VM {vm!r}: lab {roster.lab!r} has no such VM (it has: {known})")
    return CheckContext(
        roster=roster,
        vm=vm,
        host=host if host is not None else guest_session(client, entry.container),
        platform=platform if platform is not None else LabPlatform(client, roster),
        subtask_timeout_seconds=SNAPSHOT_SUBTASK_TIMEOUT.lab_seconds(roster.time_scale),
    )


def context_for_vm(client: docker.DockerClient, lab: str | None, vm: str) -> CheckContext:
    """From a lab name (None: the only running lab) and a VM name."""
    name = labs.resolve_lab(client, lab)
    return context_for(client, labs.roster_of(client, name), vm)


def context_from_container(
    client: docker.DockerClient, container: str, host: GuestHost | None = None
) -> CheckContext:
    """From a guest container's ``snaplab.lab`` / ``snaplab.vm`` labels."""
    try:
        labels = client.containers.get(container).labels or {}
    except NotFound:
        raise BadInput(f"no container named {container!r}") from None
    lab, vm = labels.get(LAB_LABEL), labels.get(VM_LABEL)
    if not lab or not vm:
        raise BadInput(
            f"container {container!r} carries no {LAB_LABEL}/{VM_LABEL} labels: "
            "it is not a snaplab guest"
        )
    return context_for(client, labs.roster_of(client, lab), vm, host=host)
