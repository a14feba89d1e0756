"""blocked-egress: an NSG rule denies the VM's outbound traffic to storage.

FACTS.md §1 cause 1 ("VM has no internet/storage access (NSG, firewall)"). The rule is
created in the VM's network security group through the lab's Microsoft.Network, with
``azure-mgmt-network``, as someone tightening the NSG on Azure would
(:mod:`lab.nsg_api`): outbound, ``Deny``, destination the ``Storage`` service tag. The
ARM twin holds it in the host firewall (:mod:`lab.platform.arm.network_firewall`),
outside the guest: the guest's root can neither see nor lift it, as on Azure. It drops
(no reset, as an NSG does) the VM's traffic to the storage account that holds its disks.
The WireServer and HostGAPlugin are not subject to NSGs, so the agent keeps fetching goal
states and reporting *Ready*; only the extension's storage calls (disk snapshots, status
blob) time out.

Parameters: ``name`` (default ``DenyStorageOutbound``), ``priority`` (default 200).
"""

from __future__ import annotations

from lab import nsg_api
from lab.errors import SnaplabError
from lab.faults import register
from lab.faults.base import FaultError, FaultTarget

DEFAULT_NAME = "DenyStorageOutbound"
DEFAULT_PRIORITY = 200


def deny_rule(params: dict[str, object]) -> tuple[str, int]:
    """The rule's name and priority from the fault's parameters."""
    name = params.get("name", DEFAULT_NAME)
    priority = params.get("priority", DEFAULT_PRIORITY)
    if not isinstance(name, str) or not isinstance(priority, int) or isinstance(priority, bool):
        raise FaultError(
            f"blocked-egress needs a string name and an integer priority "
            f"(got {name!r}, {priority!r})"
        )
    return name, priority


class BlockedEgress:
    id = "blocked-egress"
    summary = "an NSG rule, held in the host firewall, denies the VM's outbound traffic to Storage"

    def inject(self, target: FaultTarget) -> None:
        name, priority = deny_rule(target.params)
        try:
            network, group = nsg_api.connect(target.client, target.roster.lab)
            where = nsg_api.find(network, group, target.vm)
            nsg_api.put(where, name, nsg_api.storage_rule("Deny", priority))
        except SnaplabError as exc:
            raise FaultError(f"{target.vm}: cannot add NSG rule {name}: {exc}") from exc


register(BlockedEgress())
