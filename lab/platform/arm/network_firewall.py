"""A VM's NSG held in the host firewall, outside the guest, where its root cannot reach it.

On Azure the host evaluates a NIC's NSG, outside the VM: the VM's root can neither see
nor lift a rule. In the lab the twin (in its container on the host's network namespace,
with ``NET_ADMIN``) writes each VM's *outbound* rules as iptables rules in the host's
``DOCKER-USER`` chain, limited to the lab's own bridge (``-i``/``-o``) and to the VM's
address (``-s``), so they match only that VM's traffic inside its lab. This module is the
one implementation of that: the provisioner only removes what it finds at teardown.

**What is enforced.** Outbound rules whose source covers the VM, lowest priority number
first, so the first match decides as the lowest-numbered NSG rule does. ``Deny`` drops
silently (``DROP``: no reset, the caller's connection times out, as behind an NSG);
``Allow`` hands the packet on to the network's defaults (``RETURN``). Traffic no custom
rule matches meets the lab's defaults, which allow what Azure's default rules allow
(the VNet and the Internet; nothing else is reachable). **Inbound rules are recorded and
shown, not enforced**: a guest's inbound traffic in the lab comes from the host itself
(SSH, the runner), which an NSG on Azure would see as coming from outside, and from the
other VMs; the lab does not filter either.

**Addresses.** A rule's prefixes become the lab's addresses they cover on Azure:

=============================================== ========================================
``*``                                           everything the VM reaches
an IPv4 address or CIDR                         itself (IPv6: nothing, the lab has none)
``VirtualNetwork``                              the lab's VMs
``Storage``, ``Storage.<the lab's location>``   the storage account (Azurite) the VMs'
                                                disks and the backup's status blob use
``AzureCloud``, ``AzureCloud.<location>``       the same: Azure's public endpoints a lab
                                                VM reaches are its storage account's
``Internet``                                    the same: outside the VNet, a VM reaches
                                                only the storage account's public endpoint
any other tag or region                         nothing in the lab
=============================================== ========================================

**Platform traffic is not subject to NSGs** (as on Azure for 168.63.129.16, IMDS and
DHCP): the lab's DHCP and IMDS rules sit above every NSG rule, and each VM's rules start
with a ``RETURN`` for the fabric's address (WireServer, HostGAPlugin, DNS, and the
package mirror and proxy the lab runs on its host), so even ``Deny *`` leaves the agent
talking to its WireServer.

Every iptables rule carries two comments, in this order: the lab's
(``snaplab.lab=<lab>``, read *first* by teardown, so ``snaplab down`` removes NSG rules
with the lab even after a killed twin), then ``snaplab.nsg vm=<vm> rule=<name>
priority=<n> access=<Allow|Deny> gen=<g>``. A change rewrites the VM's whole block: the
new one (a new ``gen``) goes in above the old, then the old is deleted by its full spec,
never by a position another lab may have moved. The block sits below the lab's own rules
(the jump to its guard chain, DHCP, IMDS), so no NSG ``Allow`` skips the guard.

Runs inside the twin's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from lab.platform.arm.network_rules import ANY, SecurityRule, ip_network, port_range, service_tag
from lab.platform.host_rules import bridge_name, rule_comment
from lab.platform.roster import GuestEntry, Roster

CHAIN = "DOCKER-USER"
NSG_MARK = "snaplab.nsg"
EXEMPT = "platform"
# The tags that cover the lab's storage account (see the table above); compared lowercased.
_STORAGE_TAGS = ("storage", "azurecloud", "internet")

Network = ipaddress.IPv4Network


class FirewallError(Exception):
    """The host firewall could not be read or changed."""


class Firewall(Protocol):
    """What enforcement asks of the host firewall (a seam for tests)."""

    def listing(self) -> str:
        """``iptables -S DOCKER-USER``."""
        ...

    def insert(self, position: int, args: Sequence[str]) -> None: ...

    def delete(self, args: Sequence[str]) -> None: ...


Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


class HostIptables:
    """The host's iptables, seen from the twin's container.

    The container's ``iptables`` may use another backend (nf_tables or legacy) than the
    host's Docker did; the one to use is the one whose ``DOCKER-USER`` holds the lab's own
    rules (the provisioner puts them there before the twin starts). The legacy backend is
    asked only when the host has legacy tables (``/proc/net/ip_tables_names``), because
    merely listing with it makes the kernel create them. A host where no backend holds the
    lab's rules is an error: NSG rules must never land beside a lab that is not there."""

    NFT = "iptables-nft"
    LEGACY = "iptables-legacy"
    LEGACY_TABLES = Path("/proc/net/ip_tables_names")

    def __init__(self, lab: str, run: Run = _run, legacy_tables: Path | None = None) -> None:
        self._lab = lab
        self._run = run
        self._legacy_tables = legacy_tables or self.LEGACY_TABLES
        self._tool: str | None = None

    def listing(self) -> str:
        return self._call("-S", CHAIN)

    def insert(self, position: int, args: Sequence[str]) -> None:
        self._call("-I", CHAIN, str(position), *args)

    def delete(self, args: Sequence[str]) -> None:
        self._call("-D", CHAIN, *args)

    def tool(self) -> str:
        if self._tool is None:
            for tool in self._candidates():
                done = self._run([tool, "-w", "-S", CHAIN])
                if done.returncode == 0 and rule_comment(self._lab) in done.stdout:
                    self._tool = tool
                    break
            else:
                raise FirewallError(
                    f"no iptables here shows lab {self._lab}'s rules in the host's {CHAIN} "
                    "chain (is the lab up? the twin needs NET_ADMIN in the host's network "
                    "namespace)"
                )
        return self._tool

    def _candidates(self) -> list[str]:
        names = [self.NFT]
        try:
            if self._legacy_tables.read_text().strip():
                names.append(self.LEGACY)
        except OSError:
            pass
        return [t for t in (shutil.which(name) for name in names) if t]

    def _call(self, *args: str) -> str:
        done = self._run([self.tool(), "-w", *args])
        if done.returncode != 0:
            raise FirewallError(f"iptables {args[0]} {CHAIN}: {done.stderr.strip()}")
        return done.stdout


class DetachedFirewall:
    """A ``DOCKER-USER`` chain in memory, for a twin that has no host to guard (tests,
    a twin run by hand): rules are kept and listed, and enforced nowhere. The twin's
    process (:mod:`lab.platform.arm.main`) always uses :class:`HostIptables`."""

    def __init__(self) -> None:
        self.rules: list[list[str]] = []

    def listing(self) -> str:
        lines = [f"-N {CHAIN}", *(f"-A {CHAIN} {shlex.join(r)}" for r in self.rules)]
        return "\n".join(lines) + "\n"

    def insert(self, position: int, args: Sequence[str]) -> None:
        self.rules.insert(position - 1, list(args))

    def delete(self, args: Sequence[str]) -> None:
        try:
            self.rules.remove(list(args))
        except ValueError:
            raise FirewallError(f"no such rule in {CHAIN}: {shlex.join(args)}") from None


# -- what a rule covers in the lab


def lab_networks(prefix: str, roster: Roster) -> list[Network] | None:
    """The lab addresses ``prefix`` covers: None for everything (``*``), else a list
    (empty when it covers nothing of the lab)."""
    if prefix == ANY:
        return None
    tag = service_tag(prefix)
    if tag is not None:
        base, _, region = tag.lower().partition(".")
        if region and region != roster.location.lower():
            return []
        if base == "virtualnetwork":
            return [Network(f"{g.ip}/32") for g in roster.guests]
        if base in _STORAGE_TAGS:
            return [Network(f"{roster.storage_ip}/32")]
        return []
    network = ip_network(prefix)
    return [network] if isinstance(network, Network) else []


def covers(prefixes: Sequence[str], address: str, roster: Roster) -> bool:
    ip = ipaddress.IPv4Address(address)
    for prefix in prefixes:
        networks = lab_networks(prefix, roster)
        if networks is None or any(ip in n for n in networks):
            return True
    return False


def enforced(rules: Sequence[SecurityRule], vm: GuestEntry, roster: Roster) -> list[SecurityRule]:
    """The rules the host enforces for ``vm``: outbound ones whose source covers it,
    lowest priority number first."""
    mine = [r for r in rules if r.direction == "Outbound" and covers(r.sources, vm.ip, roster)]
    return sorted(mine, key=lambda r: r.priority)


# -- iptables specs


def rule_specs(
    rule: SecurityRule, vm: GuestEntry, roster: Roster, generation: str
) -> list[list[str]]:
    """The iptables rules (after ``-A DOCKER-USER``) that hold ``rule`` for ``vm``, in
    ``iptables -S`` order; none when its destination covers nothing of the lab."""
    destinations: list[Network | None] = []
    for prefix in rule.destinations:
        networks = lab_networks(prefix, roster)
        if networks is None:
            destinations = [None]
            break
        destinations += [n for n in networks if n not in destinations]
    comment = (
        f"{NSG_MARK} vm={vm.name} rule={rule.name} priority={rule.priority} "
        f"access={rule.access} gen={generation}"
    )
    target = "DROP" if rule.access == "Deny" else "RETURN"
    specs = []
    for destination in destinations:
        for match in _protocol_matches(rule):
            specs.append(_spec(roster, vm, destination, match, comment, target))
    return specs


def exemption_spec(vm: GuestEntry, roster: Roster, generation: str) -> list[str]:
    """The ``RETURN`` for the fabric's address that heads a VM's block."""
    comment = f"{NSG_MARK} vm={vm.name} exempt={EXEMPT} gen={generation}"
    return _spec(roster, vm, Network(f"{roster.fabric_ip}/32"), [], comment, "RETURN")


def block_specs(
    rules: Sequence[SecurityRule], vm: GuestEntry, roster: Roster, generation: str
) -> list[list[str]]:
    """The VM's whole block: the platform's exemption, then its rules; empty when no
    rule is enforced."""
    specs = [s for r in enforced(rules, vm, roster) for s in rule_specs(r, vm, roster, generation)]
    return [exemption_spec(vm, roster, generation), *specs] if specs else []


def _spec(
    roster: Roster,
    vm: GuestEntry,
    destination: Network | None,
    match: list[str],
    comment: str,
    target: str,
) -> list[str]:
    bridge = bridge_name(roster.lab)
    args = ["-s", f"{vm.ip}/32"]
    if destination is not None and destination.prefixlen > 0:
        args += ["-d", str(destination)]
    args += ["-i", bridge, "-o", bridge, *match]
    args += ["-m", "comment", "--comment", rule_comment(roster.lab)]
    args += ["-m", "comment", "--comment", comment]
    return [*args, "-j", target]


def _protocol_matches(rule: SecurityRule) -> list[list[str]]:
    """The protocol and port matches of ``rule``: one per protocol and port range pair
    (``*`` with ports means TCP and UDP, the protocols that have ports)."""
    sports = [port_range(p) for p in rule.source_ports]
    dports = [port_range(p) for p in rule.destination_ports]
    has_ports = any(p is not None for p in (*sports, *dports))
    if rule.protocol == ANY and not has_ports:
        return [[]]
    if rule.protocol in (ANY, "Tcp", "Udp"):
        protocols = ["tcp", "udp"] if rule.protocol == ANY else [rule.protocol.lower()]
        return [
            ["-p", proto, "-m", proto, *_port("--sport", sport), *_port("--dport", dport)]
            for proto in protocols
            for sport in sports
            for dport in dports
        ]
    return [["-p", rule.protocol.lower()]]  # Icmp, Esp, Ah: no ports


def _port(flag: str, span: tuple[int, int] | None) -> list[str]:
    if span is None:
        return []
    low, high = span
    return [flag, str(low) if low == high else f"{low}:{high}"]


# -- reading the chain


@dataclass(frozen=True)
class PlacedRule:
    """One of a VM's NSG rules in the chain: 1-based position and ``-S`` tokens."""

    position: int
    tokens: tuple[str, ...]

    @property
    def spec(self) -> tuple[str, ...]:
        return self.tokens[2:]


def _comments(tokens: Sequence[str]) -> list[str]:
    return [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "--comment"]


def _nsg_fields(comment: str) -> dict[str, str] | None:
    words = comment.split()
    if not words or words[0] != NSG_MARK:
        return None
    return dict(word.partition("=")[::2] for word in words[1:] if "=" in word)


def _chain_lines(listing: str) -> list[list[str]]:
    lines = []
    for line in listing.splitlines():
        try:
            tokens = shlex.split(line)
        except ValueError:
            tokens = line.split()
        if tokens[:2] == ["-A", CHAIN]:
            lines.append(tokens)
    return lines


def placed_rules(listing: str, lab: str, vm: str) -> list[PlacedRule]:
    """The VM's NSG rules in an ``iptables -S DOCKER-USER`` listing, in chain order."""
    found = []
    for position, tokens in enumerate(_chain_lines(listing), start=1):
        comments = _comments(tokens)
        if len(comments) < 2 or comments[0] != rule_comment(lab):
            continue
        fields = _nsg_fields(comments[1])
        if fields is not None and fields.get("vm") == vm:
            found.append(PlacedRule(position, tuple(tokens)))
    return found


def floor(listing: str, lab: str) -> int:
    """The first position below the lab's own rules (its guard jump, DHCP and IMDS
    rules), where NSG rules go."""
    lowest = 0
    for position, tokens in enumerate(_chain_lines(listing), start=1):
        comments = _comments(tokens)
        ours = bool(comments) and comments[0] == rule_comment(lab)
        if ours and (len(comments) < 2 or _nsg_fields(comments[1]) is None):
            lowest = position
    return lowest + 1


def _without_generation(spec: Sequence[str]) -> list[str]:
    return [" ".join(w for w in t.split(" ") if not w.startswith("gen=")) for t in spec]


# -- enforcement


def enforce(
    firewall: Firewall,
    roster: Roster,
    vm: str,
    rules: Sequence[SecurityRule],
    generation: str | None = None,
) -> bool:
    """Make the host firewall hold ``rules`` (the VM's NSG) for ``vm``; True if it
    changed anything. Raises :class:`FirewallError` when iptables refuses."""
    guest = roster.guest_by_name(vm)
    if guest is None:
        raise FirewallError(f"lab {roster.lab!r} has no VM {vm!r}")
    generation = generation or uuid.uuid4().hex[:8]
    wanted = block_specs(rules, guest, roster, generation)
    listing = firewall.listing()
    current = placed_rules(listing, roster.lab, vm)
    if [_without_generation(p.spec) for p in current] == [_without_generation(w) for w in wanted]:
        return False
    if wanted:
        at = min((p.position for p in current), default=floor(listing, roster.lab))
        for offset, spec in enumerate(wanted):
            firewall.insert(at + offset, spec)
    for placed in current:
        firewall.delete(placed.spec)
    return True
