"""A VM's network security group as an engineer reads it with ``azure-mgmt-network``, and
the question the checks ask of it: may this VM's traffic reach that address and port?

The NSG is found by observation, as on Azure: the network interface whose
``virtualMachine`` is the VM, then the NSG that NIC names (:func:`vm_nsg_rules`); its
rules are its own ``securityRules`` and Azure's ``defaultSecurityRules``. Evaluation is
Azure's: the rules of the flow's direction, lowest priority number first; the first one
whose source, destination, protocol and destination port cover the flow allows or
denies it. A service tag covers an address when the address belongs to it: which tags an
endpoint belongs to is the caller's knowledge (on Azure, the published service tag
ranges; a storage account's public endpoint is in ``Storage``, ``Storage.<region>``,
``AzureCloud`` and ``Internet``; a VM's own address is in ``VirtualNetwork``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import SecurityRule

ANY = "*"


@dataclass(frozen=True)
class Endpoint:
    """One end of a flow: its address and the service tags it belongs to (lower case)."""

    address: str
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Flow:
    source: Endpoint
    destination: Endpoint
    protocol: str  # "tcp", "udp", "icmp"
    port: int
    direction: str = "Outbound"


@dataclass(frozen=True)
class NsgRule:
    """One security rule as the NSG shows it."""

    name: str
    priority: int
    direction: str
    allow: bool
    protocol: str = ANY  # "Tcp", "Udp", "Icmp", ... or "*"
    sources: tuple[str, ...] = (ANY,)
    destinations: tuple[str, ...] = (ANY,)
    ports: tuple[str, ...] = (ANY,)  # destination port ranges: "*", "443", "1000-2000"
    default: bool = False

    def matches(self, flow: Flow) -> bool:
        return (
            self.direction.lower() == flow.direction.lower()
            and self.protocol in (ANY, flow.protocol.capitalize())
            and _covers(self.sources, flow.source)
            and _covers(self.destinations, flow.destination)
            and any(_port_covers(p, flow.port) for p in self.ports)
        )

    def describe(self) -> str:
        kind = "default rule" if self.default else "priority"
        ports = ",".join(self.ports)
        port = "" if ports == ANY else f" port {ports}"
        return (
            f"{self.name} ({kind} {self.priority}, {self.direction} "
            f"{'Allow' if self.allow else 'Deny'} {self.protocol} from "
            f"{','.join(self.sources)} to {','.join(self.destinations)}{port})"
        )


def first_match(rules: Sequence[NsgRule], flow: Flow) -> NsgRule | None:
    """The rule that decides ``flow``: the lowest-numbered one that matches it."""
    ordered = sorted(rules, key=lambda r: r.priority)
    return next((r for r in ordered if r.matches(flow)), None)


def from_sdk(rule: SecurityRule, default: bool = False) -> NsgRule:
    """A rule of ``azure-mgmt-network`` (single or list form of each field)."""
    props = rule.properties
    if props is None:
        raise ValueError(f"security rule {rule.name} has no properties")
    return NsgRule(
        name=rule.name or "?",
        priority=int(props.priority or 0),
        direction=_word(props.direction),
        allow=_word(props.access).lower() == "allow",
        protocol=_word(props.protocol),
        sources=_either(props.source_address_prefixes, props.source_address_prefix),
        destinations=_either(props.destination_address_prefixes, props.destination_address_prefix),
        ports=_either(props.destination_port_ranges, props.destination_port_range),
        default=default,
    )


def vm_nsg_rules(network: NetworkManagementClient, resource_group: str, vm: str) -> list[NsgRule]:
    """The rules of the NSG on ``vm``'s network interface (none when it has no NSG)."""
    suffix = f"/virtualmachines/{vm.lower()}"
    for nic in network.network_interfaces.list(resource_group):
        props = nic.properties
        owner = props.virtual_machine.id if props and props.virtual_machine else None
        if not owner or not owner.lower().endswith(suffix):
            continue
        group = props.network_security_group if props else None
        if group is None or not group.id:
            return []
        nsg = network.network_security_groups.get(
            _segment(group.id, "resourceGroups"), group.id.rsplit("/", 1)[-1]
        )
        found = nsg.properties
        own = found.security_rules or [] if found else []
        defaults = found.default_security_rules or [] if found else []
        return [from_sdk(r) for r in own] + [from_sdk(r, default=True) for r in defaults]
    raise NsgUnreadable(f"no network interface in {resource_group} belongs to VM {vm}")


class NsgUnreadable(Exception):
    """The VM's NSG could not be found or read."""


def _covers(prefixes: Iterable[str], endpoint: Endpoint) -> bool:
    for prefix in prefixes:
        if prefix == ANY or prefix.lower() in endpoint.tags:
            return True
        try:
            network = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            continue
        if ipaddress.ip_address(endpoint.address) in network:
            return True
    return False


def _port_covers(text: str, port: int) -> bool:
    if text == ANY:
        return True
    low, _, high = text.partition("-")
    try:
        return int(low) <= port <= int(high or low)
    except ValueError:
        return False


def _either(many: list[str] | None, one: str | None) -> tuple[str, ...]:
    return tuple(many) if many else (one or ANY,)


def _word(value: object) -> str:
    """An SDK enum (``SecurityRuleAccess.DENY``) as Azure spells it (``Deny``)."""
    return str(getattr(value, "value", value) or "")


def _segment(resource_id: str, name: str) -> str:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index(name.lower()) + 1]
