"""A host firewall in memory, for NSG tests that must not touch the real iptables.

It keeps ``DOCKER-USER`` as a list of rules and renders ``iptables -S`` the way the real
command does (``-A DOCKER-USER`` followed by the rule, comments in double quotes), so the
twin's enforcement parses what it would parse on a real host; every change is recorded
as the iptables argv the real backend would run.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from lab.platform.arm.network_firewall import FirewallError
from lab.platform.host_rules import bridge_name, guard_chain_name, rule_comment
from lab.platform.roster import GuestEntry, Roster


def roster(lab: str = "t1", subnet: str = "10.213.9") -> Roster:
    guests = tuple(
        GuestEntry(
            name=f"vm{i}",
            ip=f"{subnet}.{9 + i}",
            mac=f"02:42:0a:d5:09:{9 + i:02x}",
            agent_version="2.7.3.0",
            container=f"snaplab-{lab}-vm{i}",
        )
        for i in (1, 2)
    )
    return Roster(
        lab=lab,
        subnet=f"{subnet}.0/24",
        fabric_ip=f"{subnet}.2",
        storage_ip=f"{subnet}.3",
        guests=guests,
    )


def render(tokens: Sequence[str]) -> str:
    """One rule as ``iptables -S`` prints it: comments in double quotes."""
    words = []
    for index, token in enumerate(tokens):
        quoted = index > 0 and tokens[index - 1] == "--comment"
        words.append(f'"{token}"' if quoted else token)
    return " ".join(words)


def lab_rules(lab: str) -> list[list[str]]:
    """What the provisioner leaves in DOCKER-USER for a lab, top first: its edge, the
    jump to its guard chain, the IMDS and DHCP accepts."""
    br = bridge_name(lab)
    comment = ["-m", "comment", "--comment", rule_comment(lab)]
    same = ["-i", br, "-o", br]
    return [
        ["-i", br, "!", "-o", br, *comment, "-j", "DROP"],
        ["!", "-i", br, "-o", br, *comment, "-j", "DROP"],
        [*same, *comment, "-j", guard_chain_name(lab)],
        ["-s", "169.254.169.254/32", *same, *comment, "-j", "ACCEPT"],
        ["-d", "169.254.169.254/32", *same, *comment, "-j", "ACCEPT"],
        [*same, "-p", "udp", "-m", "multiport", "--dports", "67,68", *comment, "-j", "ACCEPT"],
    ]


@dataclass
class FakeFirewall:
    """``DOCKER-USER`` in memory (``-S``, ``-I <pos>``, ``-D <spec>``), starting with two
    labs' own rules; ``fail`` makes every change fail as an unprivileged iptables does."""

    labs: tuple[str, ...] = ("other", "t1")
    rules: list[list[str]] = field(default_factory=list)
    argv: list[list[str]] = field(default_factory=list)
    fail: bool = False

    def __post_init__(self) -> None:
        if not self.rules:
            self.rules = [rule for lab in self.labs for rule in lab_rules(lab)]

    def listing(self) -> str:
        lines = ["-N DOCKER-USER", *(f"-A DOCKER-USER {render(r)}" for r in self.rules)]
        return "\n".join([*lines, "-A DOCKER-USER -j RETURN"]) + "\n"

    def insert(self, position: int, args: Sequence[str]) -> None:
        self.argv.append(["iptables", "-w", "-I", "DOCKER-USER", str(position), *args])
        if self.fail:
            raise FirewallError("iptables: Permission denied (you must be root)")
        if not 1 <= position <= len(self.rules) + 2:
            raise FirewallError(f"iptables: Index of insertion too big ({position})")
        self.rules.insert(position - 1, list(args))

    def delete(self, args: Sequence[str]) -> None:
        self.argv.append(["iptables", "-w", "-D", "DOCKER-USER", *args])
        try:
            self.rules.remove(list(args))
        except ValueError:
            raise FirewallError("iptables: Bad rule (does a matching rule exist?)") from None

    @property
    def lines(self) -> list[str]:
        return [render(r) for r in self.rules]

    def nsg_lines(self, vm: str = "vm1") -> list[str]:
        return [line for line in self.lines if f"snaplab.nsg vm={vm} " in line]


def test_the_fake_renders_what_shlex_reads_back() -> None:
    rule = ["-s", "10.0.0.1/32", "-m", "comment", "--comment", "snaplab.nsg vm=vm1 rule=x"]
    line = FakeFirewall(rules=[rule]).listing().splitlines()[1]
    assert shlex.split(line)[2:] == rule
