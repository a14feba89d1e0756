"""NSG rules as iptables rules: building, parsing, ordering, refusing — and being found by
lab teardown and by the checks — all against an in-memory firewall."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from checks.nsg import first_match, parse_iptables_rule
from lab.errors import BadInput, PlatformError, UnknownVm
from lab.provision import network, nsg
from lab.provision.labels import bridge_name
from lab.provision.nsg import NsgRule, storage_rule
from tests.unit.test_nsg_fakes import FakeFirewall, lab_rules, roster

ROSTER = roster("t1")
BRIDGE = bridge_name("t1")


def chain_rules(wall: FakeFirewall) -> list[list[str]]:
    """``-S`` lines as tokens after ``-A DOCKER-USER`` (the final RETURN left out)."""
    lines = wall.listing().splitlines()[1:-1]
    return [shlex.split(line)[2:] for line in lines]


def test_a_storage_deny_rule_is_one_drop_rule_for_the_vm_on_its_bridge() -> None:
    wall = FakeFirewall()
    nsg.add_rule(ROSTER, "vm1", storage_rule("DenyStorageOutbound", 200, "Deny"), wall)

    assert chain_rules(wall) == [
        [
            "-s", "10.213.9.10/32", "-d", "10.213.9.3/32", "-i", BRIDGE, "-o", BRIDGE,
            "-p", "tcp", "-m", "tcp", "--dport", "10000",
            "-m", "comment", "--comment", "snaplab.lab=t1",
            "-m", "comment", "--comment",
            "snaplab.nsg vm=vm1 name=DenyStorageOutbound priority=200 access=Deny",
            "-j", "DROP",
        ]
    ]  # fmt: skip


def test_allow_hands_the_packet_on_instead_of_accepting_it() -> None:
    wall = FakeFirewall()
    nsg.add_rule(ROSTER, "vm1", storage_rule("AllowStorage", 100, "Allow"), wall)
    assert chain_rules(wall)[0][-2:] == ["-j", "RETURN"]


def test_rules_read_back_as_they_were_written() -> None:
    wall = FakeFirewall()
    written = [
        storage_rule("DenyStorageOutbound", 200, "Deny"),
        NsgRule("AllowRange", 150, "Allow", "Udp", "10.213.9.64/26", "1000-2000"),
        NsgRule("DenyHost", 300, "Deny", "*", "10.213.9.77/32"),
    ]
    for rule in written:
        nsg.add_rule(ROSTER, "vm1", rule, wall)

    assert nsg.list_rules(ROSTER, "vm1", wall) == sorted(written, key=lambda r: r.priority)
    assert "--dport 1000:2000" in wall.listing()


def test_a_vms_rules_stay_together_in_priority_order_among_other_rules() -> None:
    other_lab = lab_rules("other", bridge_name("other"))
    wall = FakeFirewall([*other_lab, *lab_rules("t1", BRIDGE)])
    for priority in (300, 100, 200, 4096, 150):
        nsg.add_rule(ROSTER, "vm1", storage_rule(f"R{priority}", priority, "Deny"), wall)
    nsg.add_rule(ROSTER, "vm2", storage_rule("Vm2Rule", 100, "Deny"), wall)

    order = [nsg.parse_rule(tokens, ROSTER, "vm1", "10.213.9.10") for tokens in chain_rules(wall)]
    priorities = [rule.priority for rule in order if rule is not None]
    assert priorities == [100, 150, 200, 300, 4096]
    positions = [i for i, rule in enumerate(order) if rule is not None]
    assert positions == list(range(positions[0], positions[0] + 5))  # contiguous
    assert [r.name for r in nsg.list_rules(ROSTER, "vm2", wall)] == ["Vm2Rule"]


@pytest.mark.parametrize(
    ("existing", "priority", "expected"),
    [
        ([], 100, 1),
        ([(4, 200)], 100, 4),
        ([(4, 200)], 300, 5),
        ([(4, 100), (5, 200), (6, 300)], 250, 6),
        ([(4, 100), (5, 200), (6, 300)], 50, 4),
    ],
)
def test_insert_position(existing: list[tuple[int, int]], priority: int, expected: int) -> None:
    placed = [
        nsg.PlacedRule(position, storage_rule(f"R{p}", p, "Deny"), ()) for position, p in existing
    ]
    assert nsg.insert_position(placed, priority) == expected


def test_names_and_priorities_are_unique_per_vm() -> None:
    wall = FakeFirewall()
    nsg.add_rule(ROSTER, "vm1", storage_rule("DenyStorage", 200, "Deny"), wall)
    with pytest.raises(BadInput, match="already has a rule named 'DenyStorage'"):
        nsg.add_rule(ROSTER, "vm1", storage_rule("denystorage", 300, "Deny"), wall)
    with pytest.raises(BadInput, match="priority 200 is already used by rule 'DenyStorage'"):
        nsg.add_rule(ROSTER, "vm1", storage_rule("Other", 200, "Allow"), wall)
    nsg.add_rule(ROSTER, "vm2", storage_rule("DenyStorage", 200, "Deny"), wall)  # other VM
    assert len(wall.rules) == 2


def test_remove_deletes_by_the_rules_full_spec() -> None:
    wall = FakeFirewall(lab_rules("t1", BRIDGE))
    nsg.add_rule(ROSTER, "vm1", storage_rule("DenyStorage", 200, "Deny"), wall)
    nsg.add_rule(ROSTER, "vm1", storage_rule("AllowStorage", 100, "Allow"), wall)

    removed = nsg.remove_rule(ROSTER, "vm1", "denystorage", wall)

    assert removed.name == "DenyStorage"
    assert [r.name for r in nsg.list_rules(ROSTER, "vm1", wall)] == ["AllowStorage"]
    assert len(wall.rules) == 4  # the lab's own three rules are untouched
    assert "-D" in wall.calls and not any(c.startswith("-D ") for c in wall.calls)


def test_removing_an_unknown_rule_names_the_ones_there_are() -> None:
    wall = FakeFirewall()
    nsg.add_rule(ROSTER, "vm1", storage_rule("DenyStorage", 200, "Deny"), wall)
    with pytest.raises(BadInput, match=r"no rule named 'Nope' \(it has: DenyStorage\)"):
        nsg.remove_rule(ROSTER, "vm1", "Nope", wall)


def test_an_unknown_vm_is_refused() -> None:
    with pytest.raises(UnknownVm, match="lab 't1' has no such VM"):
        nsg.list_rules(ROSTER, "vm9", FakeFirewall())


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        (storage_rule("bad name", 200, "Deny"), "rule name 'bad name'"),
        (storage_rule("-leading", 200, "Deny"), "rule name '-leading'"),
        (storage_rule("x" * 81, 200, "Deny"), "rule name"),
        (storage_rule("LowPriority", 99, "Deny"), "between 100 and 4096"),
        (storage_rule("HighPriority", 4097, "Deny"), "between 100 and 4096"),
        (NsgRule("PortNoProto", 200, "Deny", "*", "10.213.9.3/32", "80"), "needs protocol"),
        (NsgRule("BadPort", 200, "Deny", "Tcp", "10.213.9.3/32", "99999"), "port '99999'"),
        (NsgRule("BadRange", 200, "Deny", "Tcp", "10.213.9.3/32", "20-10"), "port '20-10'"),
        (NsgRule("Anywhere", 200, "Deny", "*", "*"), "expected 'Storage' or an IPv4"),
        (NsgRule("Subnet", 200, "Deny", "*", "10.213.9.0/24"), "platform address 10.213.9.2"),
        (NsgRule("Imds", 200, "Deny", "*", "169.254.0.0/16"), "169.254.169.254"),
        (NsgRule("All", 200, "Deny", "*", "0.0.0.0/0"), "platform address"),
    ],
)
def test_rules_azure_or_the_platform_would_refuse(rule: NsgRule, fragment: str) -> None:
    wall = FakeFirewall()
    with pytest.raises(BadInput, match=re.escape(fragment)):
        nsg.add_rule(ROSTER, "vm1", rule, wall)
    assert wall.rules == []


def test_lab_teardown_finds_nsg_rules_by_their_first_comment() -> None:
    wall = FakeFirewall()
    nsg.add_rule(ROSTER, "vm1", storage_rule("DenyStorage", 200, "Deny"), wall)
    tokens = shlex.split(wall.listing().splitlines()[1])

    assert network._belongs_to(tokens, "t1")
    assert network._belongs_to(tokens, None)  # down --all
    assert not network._belongs_to(tokens, "t")
    assert not network._belongs_to(tokens, "t10")


def test_other_labs_rules_with_the_same_vm_name_are_not_this_labs() -> None:
    other = roster("t2", subnet="10.213.9")  # same addresses, another lab
    wall = FakeFirewall()
    nsg.add_rule(other, "vm1", storage_rule("DenyStorage", 200, "Deny"), wall)
    assert nsg.list_rules(ROSTER, "vm1", wall) == []


def test_the_checks_read_a_deny_rule_as_blocking_the_vm_from_storage() -> None:
    wall = FakeFirewall(lab_rules("t1", BRIDGE))
    nsg.add_rule(ROSTER, "vm1", storage_rule("DenyStorage", 200, "Deny"), wall)
    nsg.add_rule(ROSTER, "vm2", storage_rule("AllowStorage", 100, "Allow"), wall)
    rules = [r for r in map(parse_iptables_rule, wall.listing().splitlines()) if r]

    vm1 = first_match(rules, "10.213.9.10", "10.213.9.3", "tcp", 10000)
    vm2 = first_match(rules, "10.213.9.11", "10.213.9.3", "tcp", 10000)
    assert vm1 is not None and not vm1.allow
    assert vm2 is not None and vm2.allow
    assert first_match(rules, "10.213.9.10", "10.213.9.2", "tcp", 80) is None  # WireServer


def test_without_iptables_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nsg.shutil, "which", lambda _: None)
    with pytest.raises(PlatformError, match="iptables is missing"):
        nsg.Iptables()


def test_iptables_failures_become_platform_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nsg.shutil, "which", lambda _: "/usr/sbin/iptables")
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 1, "", "iptables: Bad rule.\n")

    monkeypatch.setattr(nsg.subprocess, "run", fake_run)
    with pytest.raises(PlatformError, match=r"iptables -D DOCKER-USER: iptables: Bad rule\."):
        nsg.Iptables().delete(["-s", "10.0.0.1/32", "-j", "DROP"])
    assert seen == [["/usr/sbin/iptables", "-w", "-D", "DOCKER-USER", "-s", "10.0.0.1/32",
                     "-j", "DROP"]]  # fmt: skip
