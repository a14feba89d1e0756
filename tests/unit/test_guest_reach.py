"""What a guest may reach: the host firewall's lab chain, its removal, the fabric's own
rule against relaying to itself, the guest's cgroups, and NSG rules kept below the guard."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from lab.errors import ProvisionFailed
from lab.platform import fabric_firewall, guest_cgroups
from lab.platform.arm import network_firewall
from lab.provision import guest_reach
from lab.provision.labels import bridge_name

PLATFORM = guest_reach.Platform(
    lab="unit",
    gateway="10.213.5.1",
    fabric_ip="10.213.5.2",
    fabric_port="vethfab",
    storage_port="vethsto",
    control_port=8080,
    fabric_pid=4242,
    fabric_mac="02:42:0a:d5:05:02",
    storage_ip="10.213.5.3",
    storage_mac="02:42:0a:d5:05:03",
)


def test_chain_names_are_stable_and_short() -> None:
    assert guest_reach.chain_name("unit") == guest_reach.chain_name("unit")
    assert guest_reach.chain_name("unit") != guest_reach.chain_name("unit2")
    assert len(guest_reach.chain_name("a" * 20)) <= 28


def test_fabric_port_allows_only_what_a_vm_uses() -> None:
    rules = [" ".join(rule) for rule in guest_reach.chain_rules(PLATFORM)]
    assert rules[0].endswith("--ctstate RELATED,ESTABLISHED -j RETURN")
    assert rules[1] == "-d 10.213.5.1/32 -j DROP"
    fabric = [r for r in rules if "--physdev-out vethfab" in r]
    assert fabric[-1].endswith("-j DROP")  # everything not allowed above it
    allowed = " ".join(fabric[:-1])
    assert "--dports 80,32526,8081,3128,53" in allowed and "8080" not in allowed
    assert "-p udp -m multiport --dports 53,67" in allowed
    storage = [r for r in rules if "--physdev-out vethsto" in r]
    assert "--dport 10000 -j RETURN" in storage[0] and storage[-1].endswith("-j DROP")
    assert rules[-1] == "-d 10.213.5.2/32 -p tcp --dport 8080 -j DROP"


def test_jumps_close_the_edge_before_the_chain() -> None:
    bridge = bridge_name("unit")
    rules = [" ".join(rule) for rule in guest_reach.jump_rules("unit")]
    assert rules[0].startswith(f"-i {bridge} ! -o {bridge}") and rules[0].endswith("DROP")
    assert rules[1].startswith(f"! -i {bridge} -o {bridge}") and rules[1].endswith("DROP")
    assert rules[2].endswith(f"-j {guest_reach.chain_name('unit')}")
    assert all("snaplab.lab=unit" in r for r in rules)
    assert "! --ctstate RELATED,ESTABLISHED" in " ".join(guest_reach.input_rule("unit"))
    assert {chain for chain, _ in guest_reach.ipv6_rules("unit")} == {"INPUT", "FORWARD"}


class FakeHost:
    """iptables, ip6tables and ip as a recorder with a tiny rule store."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.chains: dict[str, list[list[str]]] = {"DOCKER-USER": [], "INPUT": []}

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = [a for a in argv[1:] if a != "-w"]
        self.calls.append([Path(argv[0]).name, *args])
        tool = Path(argv[0]).name
        ok = subprocess.CompletedProcess(list(argv), 0, "", "")
        bad = subprocess.CompletedProcess(list(argv), 1, "", "no")
        if tool != "iptables":
            return ok
        op = args[0]
        if op == "-N":
            self.chains[args[1]] = []
        elif op == "-L":
            return ok if args[-1] in self.chains else bad
        elif op in ("-A", "-I"):
            rule = args[2:] if op == "-A" else args[3:]
            self.chains.setdefault(args[1], []).insert(
                len(self.chains[args[1]]) if op == "-A" else 0, rule
            )
        elif op == "-C":
            return ok if args[2:] in self.chains.get(args[1], []) else bad
        elif op == "-D":
            self.chains[args[1]].remove(args[2:])
        elif op == "-F":
            self.chains[args[1]] = []
        elif op == "-X":
            del self.chains[args[1]]
        elif op == "-S":
            names = [args[1]] if len(args) > 1 else list(self.chains)
            lines = [f"-N {n}" for n in names if n.startswith("SNAPLAB-")] if len(args) == 1 else []
            for name in names:
                for rule in self.chains.get(name, []):
                    lines.append(
                        " ".join(["-A", name, *(f'"{a}"' if " " in a else a for a in rule)])
                    )
            return subprocess.CompletedProcess(list(argv), 0, "\n".join(lines), "")
        return ok


def test_apply_then_remove_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netfilter = tmp_path / "bridge-nf-call-iptables"
    netfilter.write_text("1\n")
    monkeypatch.setattr(guest_reach, "BR_NETFILTER", netfilter)
    monkeypatch.setattr(guest_reach.shutil, "which", lambda name: f"/usr/sbin/{name}")
    (tmp_path / bridge_name("unit")).mkdir()
    (tmp_path / bridge_name("unit") / "address").write_text("02:42:aa:bb:cc:dd\n")
    monkeypatch.setattr(guest_reach, "SYS_CLASS_NET", tmp_path)
    host = FakeHost()
    guest_reach.apply(PLATFORM, run=host)
    chain = guest_reach.chain_name("unit")
    assert host.chains[chain] == guest_reach.chain_rules(PLATFORM)
    assert host.chains["DOCKER-USER"] == guest_reach.jump_rules("unit")
    assert host.chains["INPUT"] == [guest_reach.input_rule("unit")]
    pins = [" ".join(c) for c in host.calls if "neigh" in c]
    bridge = bridge_name("unit")
    assert (
        f"ip neigh replace 10.213.5.2 lladdr 02:42:0a:d5:05:02 dev {bridge} nud permanent" in pins
    )
    assert (
        f"ip neigh replace 10.213.5.3 lladdr 02:42:0a:d5:05:03 dev {bridge} nud permanent" in pins
    )
    inside = [p for p in pins if p.startswith("nsenter -t 4242 -n -- ")]
    assert any("10.213.5.1 lladdr 02:42:aa:bb:cc:dd dev eth0" in p for p in inside)
    assert any("10.213.5.3 lladdr 02:42:0a:d5:05:03 dev eth0" in p for p in inside)
    # Applying twice adds no second copy.
    guest_reach.apply(PLATFORM, run=host)
    assert len(host.chains["DOCKER-USER"]) == 3 and len(host.chains["INPUT"]) == 1
    # Teardown: the jumps go first (by comment, in network.remove_firewall_rules), then this.
    host.chains["DOCKER-USER"] = []
    guest_reach.remove("unit", run=host)
    assert chain not in host.chains and host.chains["INPUT"] == []


def test_apply_refuses_without_bridge_netfilter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netfilter = tmp_path / "bridge-nf-call-iptables"
    netfilter.write_text("0\n")
    monkeypatch.setattr(guest_reach, "BR_NETFILTER", netfilter)
    with pytest.raises(ProvisionFailed, match="br_netfilter"):
        guest_reach.apply(PLATFORM, run=FakeHost())


def test_remove_all_spares_a_chain_still_jumped_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest_reach.shutil, "which", lambda name: f"/usr/sbin/{name}")
    host = FakeHost()
    host.chains["SNAPLAB-aaaaaaaaaaa"] = [["-j", "DROP"]]
    host.chains["SNAPLAB-bbbbbbbbbbb"] = []
    host.chains["DOCKER-USER"] = [["-j", "SNAPLAB-aaaaaaaaaaa"]]
    guest_reach.remove(None, run=host)
    assert "SNAPLAB-aaaaaaaaaaa" in host.chains and "SNAPLAB-bbbbbbbbbbb" not in host.chains


def test_bridge_port_finds_the_host_side_of_a_veth(tmp_path: Path) -> None:
    for name, index in (("lo", 1), ("vethabc", 31), ("snl-x", 12)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "ifindex").write_text(f"{index}\n")
    assert guest_reach.bridge_port(31, tmp_path) == "vethabc"
    with pytest.raises(ProvisionFailed, match="index 99"):
        guest_reach.bridge_port(99, tmp_path)


def test_nsg_rules_go_below_the_lab_guard() -> None:
    listing = "\n".join(
        [
            "-N DOCKER-USER",
            *(f"-A DOCKER-USER {' '.join(rule)}" for rule in guest_reach.jump_rules("unit")),
            "-A DOCKER-USER -j RETURN",
        ]
    )
    assert network_firewall.floor(listing, "unit") == 4  # below the edge and the jump
    assert network_firewall.floor(listing, "other") == 1


def test_fabric_refuses_to_relay_to_its_own_other_ports() -> None:
    drop = " ".join(fabric_firewall.local_rules()[1])
    assert "-o lo -p tcp" in drop and "--ctstate NEW" in drop
    assert "! --dports 80,32526,8081,3128,53" in drop and "REJECT" in drop
    assert "--ctstate DNAT" in " ".join(fabric_firewall.local_rules()[0])
    seen: list[list[str]] = []

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 1 if "-C" in argv else 0, "", "")

    fabric_firewall.apply(run)
    assert [a[2] for a in seen] == ["-C", "-A", "-C", "-A"]


def test_guest_waits_for_its_cgroups_then_runs_init() -> None:
    assert guest_cgroups.ENTRYPOINT[:2] == ["/bin/sh", "-c"]
    assert 'exec "$@"' in guest_cgroups.ENTRYPOINT[2]
    assert guest_cgroups.COMMAND == ["/sbin/init"]
    script = guest_cgroups.OPEN_SCRIPT
    # The VM's size is bound read-only before the hierarchies are opened.
    assert script.index("remount,bind,ro") < script.index("remount,bind,rw")
    assert "memory.limit_in_bytes" in script and "cpu.cfs_quota_us" in script


def test_open_cgroups_enters_the_guest_mount_namespace() -> None:
    class Api:
        def __init__(self, pid: int) -> None:
            self.pid = pid

        def inspect_container(self, name: str) -> dict[str, object]:
            return {"State": {"Pid": self.pid}}

    seen: list[list[str]] = []

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    guest_cgroups.open_cgroups(Api(4242), "snaplab-unit-vm1", run)
    assert seen[0][:6] == ["nsenter", "-t", "4242", "-m", "-C", "--"]
    with pytest.raises(guest_cgroups.CgroupError, match="not running"):
        guest_cgroups.open_cgroups(Api(0), "snaplab-unit-vm1", run)

    def fails(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 32, "", "mount: permission denied")

    with pytest.raises(guest_cgroups.CgroupError, match="permission denied"):
        guest_cgroups.open_cgroups(Api(4242), "snaplab-unit-vm1", fails)
