"""A VM's network security group, held in the host firewall where the guest cannot reach it.

On Azure an NSG is evaluated by the host, outside the VM: the VM's root can neither see
nor lift a rule. In the lab each rule of a VM's NSG is one iptables rule in the host's
``DOCKER-USER`` chain, limited to the lab's own bridge (``-i``/``-o``) and to the VM's
address (``-s``), so it matches only that VM's outbound traffic inside its lab.

Every rule carries two comments, in this order:

1. ``snaplab.lab=<lab>`` — the lab's tag. :func:`lab.provision.network.remove_firewall_rules`
   reads the *first* comment, so ``snaplab down`` and ``down --all`` remove NSG rules
   with the rest of the lab, even after a killed run.
2. ``snaplab.nsg vm=<vm> name=<name> priority=<n> access=<Allow|Deny>`` — what ARM would
   show for the rule; the match fields themselves are read back from iptables.

Semantics kept from Azure, and only what the lab needs: outbound rules only; ``Deny`` drops
silently (``DROP``: no reset, the caller's connection times out, as behind an NSG),
``Allow`` hands the packet on to the network's defaults (``RETURN``); a VM's rules sit
together in the chain, lowest priority number first, so the first match decides as the
lowest-numbered NSG rule does. Destinations are an IPv4 prefix or the ``Storage`` service
tag (the lab's storage account). Platform traffic is not subject to NSGs on Azure
(168.63.129.16, IMDS, DHCP), so a rule whose destination covers the lab's WireServer, IMDS
or the DHCP broadcast address is refused rather than made to block the agent itself.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, cast

from lab.errors import BadInput, PlatformError, UnknownVm
from lab.platform.roster import IMDS_ADDRESS, Roster
from lab.provision import guest_reach
from lab.provision.labels import bridge_name, rule_comment

CHAIN = "DOCKER-USER"
NSG_MARK = "snaplab.nsg"
STORAGE_TAG = "Storage"
STORAGE_PORT = 10000  # the lab's blob endpoint (Azurite)
PRIORITY_RANGE = (100, 4096)  # Azure's range for custom rules
BROADCAST = "255.255.255.255"
# Azure: 1-80 characters; letters, digits, '_', '.', '-'; starts with a letter or digit,
# ends with a letter, digit or '_'. (No spaces or '=', which the comment relies on.)
_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
_PORT_RANGE = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")

Access = Literal["Allow", "Deny"]
Transport = Literal["Tcp", "Udp", "*"]
_TARGETS: dict[str, str] = {"Deny": "DROP", "Allow": "RETURN"}
_ACCESS_OF_TARGET = {target: access for access, target in _TARGETS.items()}


@dataclass(frozen=True)
class NsgRule:
    """One outbound security rule, as ``az network nsg rule`` would describe it."""

    name: str
    priority: int
    access: Access
    protocol: Transport = "*"
    destination: str = STORAGE_TAG  # "Storage" or an IPv4 prefix ("10.213.0.3/32")
    destination_port: str = "*"  # "*", "10000" or "1000-2000"
    direction: Literal["Outbound"] = "Outbound"

    def describe(self) -> str:
        port = "" if self.destination_port == "*" else f" port {self.destination_port}"
        return (
            f"{self.name} (priority {self.priority}, {self.access} {self.protocol} "
            f"to {self.destination}{port})"
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def storage_rule(name: str, priority: int, access: Access) -> NsgRule:
    """A rule for the VM's traffic to storage (the ``Storage`` tag, TCP to the blob port)."""
    return NsgRule(name, priority, access, "Tcp", STORAGE_TAG, str(STORAGE_PORT))


@dataclass(frozen=True)
class PlacedRule:
    """A rule found in the chain: its 1-based position and its ``iptables -S`` tokens."""

    position: int
    rule: NsgRule
    tokens: tuple[str, ...]


class Firewall(Protocol):
    """The three things this module asks of the host firewall (a seam for tests)."""

    def listing(self) -> str:
        """``iptables -S DOCKER-USER``."""
        ...

    def insert(self, position: int, args: Sequence[str]) -> None: ...

    def delete(self, args: Sequence[str]) -> None: ...


class Iptables:
    """The host's iptables (``-w``: other labs may change the chain at the same time)."""

    def __init__(self) -> None:
        path = shutil.which("iptables")
        if path is None:
            raise PlatformError("iptables is missing on this machine (it holds the lab's NSGs)")
        self.path = path

    def listing(self) -> str:
        return self._run("-S", CHAIN)

    def insert(self, position: int, args: Sequence[str]) -> None:
        self._run("-I", CHAIN, str(position), *args)

    def delete(self, args: Sequence[str]) -> None:
        self._run("-D", CHAIN, *args)

    def _run(self, *args: str) -> str:
        done = subprocess.run([self.path, "-w", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PlatformError(f"iptables {args[0]} {CHAIN}: {done.stderr.strip()}")
        return done.stdout


def list_rules(roster: Roster, vm: str, firewall: Firewall | None = None) -> list[NsgRule]:
    """The VM's NSG rules, lowest priority number first."""
    vm_ip = _vm_ip(roster, vm)
    placed = placed_rules((firewall or Iptables()).listing(), roster, vm, vm_ip)
    return [p.rule for p in sorted(placed, key=lambda p: p.rule.priority)]


def add_rule(roster: Roster, vm: str, rule: NsgRule, firewall: Firewall | None = None) -> NsgRule:
    """Add ``rule`` to the VM's NSG at the place its priority gives it."""
    vm_ip = _vm_ip(roster, vm)
    check_rule(rule, roster)
    wall = firewall or Iptables()
    listing = wall.listing()
    placed = placed_rules(listing, roster, vm, vm_ip)
    for other in placed:
        if other.rule.name.lower() == rule.name.lower():
            raise BadInput(f"{vm}'s NSG already has a rule named {other.rule.name!r}")
        if other.rule.priority == rule.priority:
            raise BadInput(
                f"priority {rule.priority} is already used by rule {other.rule.name!r} of "
                f"{vm}'s NSG (priorities are unique; pick another with --priority)"
            )
    floor = guard_floor(listing, roster.lab)
    wall.insert(insert_position(placed, rule.priority, floor), rule_args(roster, vm, vm_ip, rule))
    return rule


def remove_rule(roster: Roster, vm: str, name: str, firewall: Firewall | None = None) -> NsgRule:
    """Remove the VM's rule called ``name`` (case-insensitive, as ARM names are)."""
    vm_ip = _vm_ip(roster, vm)
    wall = firewall or Iptables()
    placed = placed_rules(wall.listing(), roster, vm, vm_ip)
    found = next((p for p in placed if p.rule.name.lower() == name.lower()), None)
    if found is None:
        known = ", ".join(p.rule.name for p in placed) or "none"
        raise BadInput(f"{vm}'s NSG has no rule named {name!r} (it has: {known})")
    wall.delete(found.tokens[2:])  # by its full spec, never by a position that may move
    return found.rule


def check_rule(rule: NsgRule, roster: Roster) -> None:
    """Refuse what Azure would refuse, and what would block the platform itself."""
    if not _NAME.match(rule.name):
        raise BadInput(
            f"rule name {rule.name!r}: 1-80 letters, digits, '_', '.' or '-', starting "
            "with a letter or digit and ending with a letter, digit or '_'"
        )
    low, high = PRIORITY_RANGE
    if not low <= rule.priority <= high:
        raise BadInput(f"priority {rule.priority}: must be between {low} and {high}")
    if rule.access not in _TARGETS:
        raise BadInput(f"access {rule.access!r}: must be Allow or Deny")
    if rule.protocol not in ("Tcp", "Udp", "*"):
        raise BadInput(f"protocol {rule.protocol!r}: must be Tcp, Udp or *")
    if rule.destination_port != "*":
        if rule.protocol == "*":
            raise BadInput("a destination port needs protocol Tcp or Udp")
        _port_range(rule.destination_port)
    destination = _destination_network(rule.destination, roster)
    exempt = (roster.fabric_ip, IMDS_ADDRESS, BROADCAST)
    covered = [a for a in exempt if ipaddress.IPv4Address(a) in destination]
    if covered:
        raise BadInput(
            f"destination {rule.destination}: covers the platform address {covered[0]} "
            "(WireServer, IMDS and DHCP traffic is not subject to NSGs, as on Azure)"
        )


def rule_args(roster: Roster, vm: str, vm_ip: str, rule: NsgRule) -> list[str]:
    """The iptables match and target of ``rule``, in ``iptables -S`` order."""
    bridge = bridge_name(roster.lab)
    args = ["-s", f"{vm_ip}/32", "-d", str(_destination_network(rule.destination, roster))]
    args += ["-i", bridge, "-o", bridge]
    if rule.protocol != "*":
        proto = rule.protocol.lower()
        args += ["-p", proto, "-m", proto]
        if rule.destination_port != "*":
            low, high = _port_range(rule.destination_port)
            args += ["--dport", str(low) if low == high else f"{low}:{high}"]
    args += ["-m", "comment", "--comment", rule_comment(roster.lab)]
    args += ["-m", "comment", "--comment", nsg_comment(vm, rule)]
    return [*args, "-j", _TARGETS[rule.access]]


def nsg_comment(vm: str, rule: NsgRule) -> str:
    return f"{NSG_MARK} vm={vm} name={rule.name} priority={rule.priority} access={rule.access}"


def placed_rules(listing: str, roster: Roster, vm: str, vm_ip: str) -> list[PlacedRule]:
    """The VM's NSG rules in an ``iptables -S`` listing, with their chain positions."""
    found = []
    position = 0
    for line in listing.splitlines():
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        if tokens[:2] != ["-A", CHAIN]:
            continue
        position += 1
        rule = parse_rule(tokens, roster, vm, vm_ip)
        if rule is not None:
            found.append(PlacedRule(position, rule, tuple(tokens)))
    return found


def parse_rule(tokens: Sequence[str], roster: Roster, vm: str, vm_ip: str) -> NsgRule | None:
    """The NSG rule an ``iptables -S`` line holds, if it is one of this VM's in this lab."""
    comments = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "--comment"]
    if len(comments) < 2 or comments[0] != rule_comment(roster.lab):
        return None
    fields = _comment_fields(comments[1])
    if fields is None or fields.get("vm") != vm or _value(tokens, "-s") != f"{vm_ip}/32":
        return None
    target = _value(tokens, "-j")
    if target not in _ACCESS_OF_TARGET:
        return None
    try:
        priority = int(fields.get("priority", ""))
    except ValueError:
        return None
    proto = (_value(tokens, "-p") or "").capitalize()
    dport = _value(tokens, "--dport")
    destination = _value(tokens, "-d") or "*"
    if destination == f"{roster.storage_ip}/32":
        destination = STORAGE_TAG
    return NsgRule(
        name=fields.get("name", "?"),
        priority=priority,
        access=cast(Access, _ACCESS_OF_TARGET[target]),
        protocol=cast(Transport, proto if proto in ("Tcp", "Udp") else "*"),
        destination=destination,
        destination_port=dport.replace(":", "-") if dport else "*",
    )


def insert_position(placed: Sequence[PlacedRule], priority: int, floor: int = 1) -> int:
    """Where a rule of ``priority`` goes so the VM's rules stay in priority order:
    after the last one with a lower number, else before the first one, else at
    ``floor`` (the first place below the lab's guard, see :func:`guard_floor`)."""
    before = [p.position for p in placed if p.rule.priority < priority]
    if before:
        return max(floor, max(before) + 1)
    if placed:
        return max(floor, min(p.position for p in placed))
    return floor


def guard_floor(listing: str, lab: str) -> int:
    """The first chain position below the lab's jump to its guard chain
    (:mod:`lab.provision.guest_reach`), so no NSG ``Allow`` (``RETURN``) skips the guard
    that keeps guests away from the fabric's controller and the host."""
    guard = guest_reach.chain_name(lab)
    floor = 1
    position = 0
    for line in listing.splitlines():
        tokens = line.split()
        if tokens[:2] != ["-A", CHAIN]:
            continue
        position += 1
        if tokens[-2:] == ["-j", guard]:
            floor = position + 1
    return floor


def _comment_fields(comment: str) -> dict[str, str] | None:
    words = comment.split()
    if not words or words[0] != NSG_MARK:
        return None
    return dict(word.partition("=")[::2] for word in words[1:] if "=" in word)


def _value(tokens: Sequence[str], flag: str) -> str | None:
    for index, token in enumerate(tokens[:-1]):
        if token == flag:
            return tokens[index + 1]
    return None


def _vm_ip(roster: Roster, vm: str) -> str:
    guest = roster.guest_by_name(vm)
    if guest is None:
        known = ", ".join(g.name for g in roster.guests)
        raise UnknownVm(f"VM {vm!r}: lab {roster.lab!r} has no such VM (it has: {known})")
    return guest.ip


def _destination_network(destination: str, roster: Roster) -> ipaddress.IPv4Network:
    if destination == STORAGE_TAG:
        return ipaddress.IPv4Network(f"{roster.storage_ip}/32")
    try:
        return ipaddress.IPv4Network(destination, strict=False)
    except ValueError:
        raise BadInput(
            f"destination {destination!r}: expected {STORAGE_TAG!r} or an IPv4 prefix"
        ) from None


def _port_range(text: str) -> tuple[int, int]:
    match = _PORT_RANGE.match(text)
    if match:
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if 1 <= low <= high <= 65535:
            return low, high
    raise BadInput(f"destination port {text!r}: expected *, a port or a range (1000-2000)")
