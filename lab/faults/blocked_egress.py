"""blocked-egress: an NSG rule denies the VM's outbound traffic to storage.

FACTS.md §1 cause 1 ("VM has no internet/storage access (NSG, firewall)"). The rule is
added to the VM's network security group, which the lab holds in the host firewall
(:mod:`lab.provision.nsg`), outside the guest: the guest's root can neither see nor lift
it, as on Azure. It drops (no reset, as an NSG does) TCP from the VM to the storage
account's blob endpoint. The WireServer and HostGAPlugin are not subject to NSGs, so the
agent keeps fetching goal states and reporting *Ready*; only the extension's storage calls
(disk snapshots, status blob) time out.

Parameters: ``name`` (default ``DenyStorageOutbound``), ``priority`` (default 200).
"""

from __future__ import annotations

from lab.errors import SnaplabError
from lab.faults import register
from lab.faults.base import FaultError, FaultTarget
from lab.provision import nsg

DEFAULT_NAME = "DenyStorageOutbound"
DEFAULT_PRIORITY = 200


def deny_rule(params: dict[str, object]) -> nsg.NsgRule:
    name = params.get("name", DEFAULT_NAME)
    priority = params.get("priority", DEFAULT_PRIORITY)
    if not isinstance(name, str) or not isinstance(priority, int) or isinstance(priority, bool):
        raise FaultError(
            f"blocked-egress needs a string name and an integer priority "
            f"(got {name!r}, {priority!r})"
        )
    return nsg.storage_rule(name, priority, "Deny")


class BlockedEgress:
    id = "blocked-egress"
    summary = "an NSG rule in the host firewall drops the VM's TCP traffic to storage"

    def inject(self, target: FaultTarget) -> None:
        rule = deny_rule(target.params)
        try:
            nsg.add_rule(target.roster, target.vm, rule)
        except SnaplabError as exc:
            raise FaultError(f"{target.vm}: cannot add NSG rule {rule.name}: {exc}") from exc


register(BlockedEgress())
