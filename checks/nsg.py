"""NSG rules as the checks read them, and the question they answer: may this VM's
traffic reach that address and port?

In the lab an NSG rule is an iptables rule outside the guest (its root cannot lift it),
tagged with a comment that starts ``snaplab.nsg``. :func:`iptables_rules` reads them
from the host; it is the one seam to point at ``lab.provision.nsg`` once that module
lists a VM's rules itself. Evaluation is first-match, as iptables (and an NSG by
priority) decides: the first rule whose source, destination, protocol and port cover
the flow allows or denies it; no matching rule means the lab's default (allowed).
"""

from __future__ import annotations

import ipaddress
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# An NSG rule carries a comment "snaplab.nsg" or "snaplab.nsg=<name>" (beside the
# "snaplab.lab=<lab>" comment that teardown uses to find it).
NSG_MARK = "snaplab.nsg"
DENY_TARGETS = frozenset({"DROP", "REJECT"})
ALLOW_TARGETS = frozenset({"ACCEPT", "RETURN"})

Network = ipaddress.IPv4Network


@dataclass(frozen=True)
class NsgRule:
    """One rule: who it matches and whether it allows or denies."""

    name: str
    allow: bool
    source: Network | None = None  # None = any
    destination: Network | None = None
    protocol: str | None = None  # "tcp", "udp", ... None = any
    ports: tuple[tuple[int, int], ...] | None = None  # inclusive dport ranges; None = any

    def matches(self, source: str, destination: str, protocol: str, port: int) -> bool:
        src, dst = ipaddress.IPv4Address(source), ipaddress.IPv4Address(destination)
        return (
            (self.source is None or src in self.source)
            and (self.destination is None or dst in self.destination)
            and (self.protocol is None or self.protocol == protocol)
            and (self.ports is None or any(low <= port <= high for low, high in self.ports))
        )

    def describe(self) -> str:
        verb = "allow" if self.allow else "deny"
        ports = ""
        if self.ports is not None:
            ports = ":" + ",".join(
                str(low) if low == high else f"{low}-{high}" for low, high in self.ports
            )
        return (
            f"{self.name} ({verb} {self.protocol or 'any'} "
            f"{self.source or 'any'} -> {self.destination or 'any'}{ports})"
        )


RuleSource = Callable[[], Sequence[NsgRule]]


def first_match(
    rules: Sequence[NsgRule], source: str, destination: str, protocol: str, port: int
) -> NsgRule | None:
    return next((r for r in rules if r.matches(source, destination, protocol, port)), None)


def parse_iptables_rule(line: str) -> NsgRule | None:
    """An ``iptables -S`` line tagged ``snaplab.nsg[=...]`` as a rule; None for others."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        return None
    if not tokens or tokens[0] != "-A":
        return None
    comments = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "--comment"]
    target = _value(tokens, "-j")
    if (
        not any(c.startswith(NSG_MARK) for c in comments)
        or target not in DENY_TARGETS | ALLOW_TARGETS
    ):
        return None
    return NsgRule(
        name=" ".join(comments),
        allow=target in ALLOW_TARGETS,
        source=_network(_value(tokens, "-s")),
        destination=_network(_value(tokens, "-d")),
        protocol=_value(tokens, "-p"),
        ports=_ports(_value(tokens, "--dport") or _value(tokens, "--dports")),
    )


def iptables_rules() -> list[NsgRule]:
    """Every NSG-tagged rule of the host's filter table, in evaluation order."""
    iptables = shutil.which("iptables")
    if iptables is None:
        raise NsgUnreadable("iptables is not installed on this host")
    done = subprocess.run([iptables, "-S"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NsgUnreadable(f"iptables -S failed: {done.stderr.strip()}")
    rules = (parse_iptables_rule(line) for line in done.stdout.splitlines())
    return [rule for rule in rules if rule is not None]


class NsgUnreadable(Exception):
    """The rules could not be listed (no iptables, no permission)."""


def _value(tokens: list[str], flag: str) -> str | None:
    if flag not in tokens:
        return None
    index = tokens.index(flag)
    return tokens[index + 1] if index + 1 < len(tokens) else None


def _network(text: str | None) -> Network | None:
    if text is None:
        return None
    network = ipaddress.IPv4Network(text, strict=False)
    return None if network.prefixlen == 0 else network


def _ports(text: str | None) -> tuple[tuple[int, int], ...] | None:
    if not text:
        return None
    ranges = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        ranges.append((int(low), int(high or low)))
    return tuple(ranges)
