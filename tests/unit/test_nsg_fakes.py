"""A host firewall in memory, for NSG tests that must not touch the real iptables.

It keeps ``DOCKER-USER`` as a list of rules and renders ``iptables -S`` the way the real
command does (``-A DOCKER-USER`` followed by the rule, comments in double quotes), so the
code under test parses what it would parse on a real host.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from lab.errors import PlatformError
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


class FakeFirewall:
    """``DOCKER-USER`` in memory: ``-S``, ``-I <pos>`` and ``-D <spec>``."""

    def __init__(self, rules: Sequence[Sequence[str]] = ()) -> None:
        self.rules: list[list[str]] = [list(r) for r in rules]
        self.calls: list[str] = []

    def listing(self) -> str:
        self.calls.append("-S")
        lines = ["-N DOCKER-USER"]
        lines += [f"-A DOCKER-USER {render(rule)}" for rule in self.rules]
        return "\n".join([*lines, "-A DOCKER-USER -j RETURN"]) + "\n"

    def insert(self, position: int, args: Sequence[str]) -> None:
        self.calls.append(f"-I {position}")
        if not 1 <= position <= len(self.rules) + 2:
            raise PlatformError(f"iptables: Index of insertion too big ({position})")
        self.rules.insert(position - 1, list(args))

    def delete(self, args: Sequence[str]) -> None:
        self.calls.append("-D")
        try:
            self.rules.remove(list(args))
        except ValueError:
            raise PlatformError("iptables: Bad rule (does a matching rule exist?)") from None


def lab_rules(lab: str, bridge: str) -> list[list[str]]:
    """The lab's own DHCP/IMDS accept rules, as ``network.add_firewall_rules`` makes them."""
    comment = ["-m", "comment", "--comment", f"snaplab.lab={lab}"]
    same = ["-i", bridge, "-o", bridge]
    return [
        ["-s", "169.254.169.254/32", *same, *comment, "-j", "ACCEPT"],
        ["-d", "169.254.169.254/32", *same, *comment, "-j", "ACCEPT"],
        [*same, "-p", "udp", "-m", "multiport", "--dports", "67,68", *comment, "-j", "ACCEPT"],
    ]


def test_the_fake_renders_what_shlex_reads_back() -> None:
    rule = ["-s", "10.0.0.1/32", "-m", "comment", "--comment", "snaplab.nsg vm=vm1 name=x"]
    line = FakeFirewall([rule]).listing().splitlines()[1]
    assert shlex.split(line)[2:] == rule
