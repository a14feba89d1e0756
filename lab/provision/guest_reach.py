"""What a guest can reach: what an Azure VM reaches, and nothing of the fabric or the host.

An Azure VM reaches the WireServer and HostGAPlugin ports of its host, IMDS, DHCP and DNS,
storage, and what its NSG allows; nothing of the platform's controller, nothing of the
host's other services. A lab guest has root and ``NET_ADMIN`` (it runs dhclient and its own
iptables), so every wall is built outside it, in the host's firewall, where its root
cannot lift it:

* **The lab chain** (``SNAPLAB-<hash>``, one per lab), jumped to from ``DOCKER-USER`` for
  every packet bridged inside the lab. A packet bound for the fabric's bridge port may
  only go to the ports a VM uses (WireServer, HostGAPlugin, DNS, DHCP, the package
  mirror and the proxy); one bound for storage's port only to the blob endpoint.
  Matching the *bridge port* (``physdev``), not an address, covers every address the
  fabric answers on (IMDS, a redeployed WireServer) and any address a guest forges.
  Packets bridged to the gateway address are dropped too: only a forged ARP answer
  sends them there. The fabric's control API is the main thing this keeps away.
* **Crossing the lab's edge**: nothing is routed from the lab's bridge to another
  interface or from another interface into it (other labs, the host's networks),
  whatever Docker's own isolation rules do.
* **The host itself** (``INPUT``): new connections from the lab's bridge to any host
  address — the gateway, where host services listen on 0.0.0.0, or any other — are
  dropped. The host's own connections to the fabric (the CLI, the ARM twin on host
  networking) and to a guest's sshd (``snaplab ssh``, runbook guest steps) are not
  forwarded traffic, so they pass, and their answers are ``ESTABLISHED``.
* **IPv6**: no lab uses it; every IPv6 packet on the bridge is dropped.
* **The neighbour entries between the host, the fabric and storage** are made permanent,
  so a guest that answers ARP for their addresses cannot draw the host's control
  requests (and their token), their answers, or the fabric's storage traffic to itself.

Every rule carries the lab's comment (``snaplab.lab=<lab>``), as the DHCP and NSG rules
do, and teardown removes them by it; the lab chain is named after the lab and removed
with its jump. NSG rules go *below* the lab's jump, so an NSG ``Allow`` never skips it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.errors import ProvisionFailed
from lab.platform.host_rules import GUARD_CHAIN_PREFIX, guard_chain_name
from lab.platform.package_mirror import MIRROR_PORT
from lab.platform.proxy import PROXY_PORT
from lab.platform.roster import HOSTPLUGIN_PORT, WIRESERVER_PORT
from lab.provision.labels import RULE_COMMENT_PREFIX, bridge_name, rule_comment

CHAIN_PREFIX = GUARD_CHAIN_PREFIX
DOCKER_USER = "DOCKER-USER"
DNS_PORT = 53
DHCP_SERVER_PORT = 67
BLOB_PORT = 10000
FABRIC_TCP_PORTS = (WIRESERVER_PORT, HOSTPLUGIN_PORT, MIRROR_PORT, PROXY_PORT, DNS_PORT)
FABRIC_UDP_PORTS = (DNS_PORT, DHCP_SERVER_PORT)
STORAGE_TCP_PORTS = (BLOB_PORT,)
BR_NETFILTER = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
SYS_CLASS_NET = Path("/sys/class/net")

Run = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class Platform:
    """Where a lab's platform sits on its bridge."""

    lab: str
    gateway: str
    fabric_ip: str
    fabric_port: str  # the host side of the fabric's veth (a bridge port)
    storage_port: str
    control_port: int
    fabric_pid: int  # in the host's PID namespace, to reach the fabric's network namespace
    fabric_mac: str
    storage_ip: str
    storage_mac: str


def chain_name(lab: str) -> str:
    """The lab chain's name (shared with the ARM twin's NSG rules, which sit below it)."""
    return guard_chain_name(lab)


def _ports(ports: Sequence[int]) -> list[str]:
    if len(ports) == 1:
        return ["--dport", str(ports[0])]
    return ["-m", "multiport", "--dports", ",".join(str(p) for p in ports)]


def chain_rules(platform: Platform) -> list[list[str]]:
    """The lab chain's rules, in order (each after ``-A <chain>``)."""
    fabric = ["-m", "physdev", "--physdev-out", platform.fabric_port]
    storage = ["-m", "physdev", "--physdev-out", platform.storage_port]
    to_fabric_ip = ["-d", f"{platform.fabric_ip}/32"]
    return [
        ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "RETURN"],
        ["-d", f"{platform.gateway}/32", "-j", "DROP"],
        [*fabric, "-p", "tcp", *_ports(FABRIC_TCP_PORTS), "-j", "RETURN"],
        [*fabric, "-p", "udp", *_ports(FABRIC_UDP_PORTS), "-j", "RETURN"],
        [*fabric, "-p", "icmp", "-j", "RETURN"],
        [*fabric, "-j", "DROP"],
        [*storage, "-p", "tcp", *_ports(STORAGE_TCP_PORTS), "-j", "RETURN"],
        [*storage, "-p", "icmp", "-j", "RETURN"],
        [*storage, "-j", "DROP"],
        # Should the fabric ever get another bridge port (a restarted container), its
        # control API stays closed by address.
        [*to_fabric_ip, "-p", "tcp", "--dport", str(platform.control_port), "-j", "DROP"],
    ]


def jump_rules(lab: str) -> list[list[str]]:
    """``DOCKER-USER`` rules, top first: the lab's edge, then the jump to its chain."""
    bridge = bridge_name(lab)
    comment = ["-m", "comment", "--comment", rule_comment(lab)]
    return [
        ["-i", bridge, "!", "-o", bridge, *comment, "-j", "DROP"],
        ["!", "-i", bridge, "-o", bridge, *comment, "-j", "DROP"],
        ["-i", bridge, "-o", bridge, *comment, "-j", chain_name(lab)],
    ]


def input_rule(lab: str) -> list[str]:
    """The ``INPUT`` rule: no new connection from the lab's bridge to the host."""
    return [
        "-i",
        bridge_name(lab),
        "-m",
        "conntrack",
        "!",
        "--ctstate",
        "RELATED,ESTABLISHED",
        "-m",
        "comment",
        "--comment",
        rule_comment(lab),
        "-j",
        "DROP",
    ]


def ipv6_rules(lab: str) -> list[tuple[str, list[str]]]:
    """``(chain, rule)`` pairs for ip6tables: nothing of IPv6 on the lab's bridge."""
    bridge = bridge_name(lab)
    comment = ["-m", "comment", "--comment", rule_comment(lab)]
    return [
        ("INPUT", ["-i", bridge, *comment, "-j", "DROP"]),
        ("FORWARD", ["-i", bridge, *comment, "-j", "DROP"]),
        ("FORWARD", ["-o", bridge, *comment, "-j", "DROP"]),
    ]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ProvisionFailed(f"{name} is missing on this machine (it keeps guests in their lab)")
    return path


def check_bridge_filtering(path: Path | None = None) -> None:
    """The lab chain sees bridged packets only with br_netfilter on (Docker turns it
    on for its bridges); refuse to start a lab whose guests it would not hold."""
    path = path or BR_NETFILTER
    try:
        enabled = path.read_text().strip() == "1"
    except OSError:
        enabled = False
    if not enabled:
        raise ProvisionFailed(
            f"{path} is not 1: the host firewall would not see traffic between a lab's "
            "containers (load br_netfilter and set it to 1)"
        )


def apply(platform: Platform, run: Run = _run) -> None:
    """Build the lab chain, its jumps, the INPUT and IPv6 rules and the neighbour entries."""
    check_bridge_filtering()
    iptables = _tool("iptables")
    chain = chain_name(platform.lab)

    def must(argv: Sequence[str], what: str) -> None:
        done = run(argv)
        if done.returncode != 0:
            raise ProvisionFailed(f"{what}: {done.stderr.strip() or done.stdout.strip()}")

    if run([iptables, "-w", "-n", "-L", chain]).returncode == 0:
        must([iptables, "-w", "-F", chain], f"iptables could not flush {chain}")
    else:
        must([iptables, "-w", "-N", chain], f"iptables could not create {chain}")
    for rule in chain_rules(platform):
        must([iptables, "-w", "-A", chain, *rule], f"iptables could not fill {chain}")
    # Inserted bottom-up at the top, so they end in jump_rules' order, above the lab's
    # DHCP and IMDS ACCEPT rules and above every NSG rule.
    for rule in reversed(jump_rules(platform.lab)):
        if run([iptables, "-w", "-C", DOCKER_USER, *rule]).returncode != 0:
            must([iptables, "-w", "-I", DOCKER_USER, "1", *rule], "iptables DOCKER-USER")
    rule = input_rule(platform.lab)
    if run([iptables, "-w", "-C", "INPUT", *rule]).returncode != 0:
        must([iptables, "-w", "-I", "INPUT", "1", *rule], "iptables INPUT")
    ip6tables = shutil.which("ip6tables")
    if ip6tables is not None:
        for table_chain, rule in ipv6_rules(platform.lab):
            if run([ip6tables, "-w", "-C", table_chain, *rule]).returncode != 0:
                must([ip6tables, "-w", "-I", table_chain, "1", *rule], "ip6tables")
    for argv in neighbour_pins(platform, _tool("ip"), _tool("nsenter")):
        must(argv, "could not pin a neighbour entry between the host and the platform")


def neighbour_pins(platform: Platform, ip: str, nsenter: str) -> list[list[str]]:
    """``ip neigh replace ... nud permanent`` for the host's entries of the fabric and
    storage, and the fabric's entries of the host and storage (a guest's forged ARP
    answer could otherwise draw the host's control requests, with their token, or the
    fabric's storage traffic to itself)."""
    bridge = bridge_name(platform.lab)
    bridge_mac = (SYS_CLASS_NET / bridge / "address").read_text().strip()
    in_fabric = [nsenter, "-t", str(platform.fabric_pid), "-n", "--", ip]
    pins = [
        ([ip], platform.fabric_ip, platform.fabric_mac, bridge),
        ([ip], platform.storage_ip, platform.storage_mac, bridge),
        (in_fabric, platform.gateway, bridge_mac, "eth0"),
        (in_fabric, platform.storage_ip, platform.storage_mac, "eth0"),
    ]
    return [
        [*prefix, "neigh", "replace", address, "lladdr", mac, "dev", dev, "nud", "permanent"]
        for prefix, address, mac, dev in pins
    ]


def remove(lab: str | None, run: Run = _run) -> int:
    """Remove the lab's (every lab's when None) INPUT and IPv6 rules and lab chains.

    ``DOCKER-USER`` rules, jumps included, are removed by their comment in
    :func:`lab.provision.network.remove_firewall_rules`, which calls this afterwards,
    when no jump refers to the chains any more.
    """
    removed = 0
    for tool, chains in (("iptables", ("INPUT",)), ("ip6tables", ("INPUT", "FORWARD"))):
        path = shutil.which(tool)
        if path is None:
            continue
        for chain in chains:
            listing = run([path, "-w", "-S", chain]).stdout
            for tokens in _lab_rules(listing, chain, lab):
                removed += run([path, "-w", "-D", chain, *tokens[2:]]).returncode == 0
    iptables = shutil.which("iptables")
    if iptables is None:
        return removed
    wanted = {chain_name(lab)} if lab else None
    for line in run([iptables, "-w", "-S"]).stdout.splitlines():
        tokens = line.split()
        if len(tokens) != 2 or tokens[0] != "-N" or not tokens[1].startswith(CHAIN_PREFIX):
            continue
        if wanted is not None and tokens[1] not in wanted:
            continue
        if _referenced(run([iptables, "-w", "-S", DOCKER_USER]).stdout, tokens[1]):
            continue  # another lab's rules still jump here: a lab name hashing alike
        run([iptables, "-w", "-F", tokens[1]])
        removed += run([iptables, "-w", "-X", tokens[1]]).returncode == 0
    return removed


def _lab_rules(listing: str, chain: str, lab: str | None) -> list[list[str]]:
    found = []
    for line in listing.splitlines():
        try:
            tokens = shlex.split(line)
        except ValueError:
            continue
        if tokens[:2] != ["-A", chain] or "--comment" not in tokens:
            continue
        comment = tokens[tokens.index("--comment") + 1]
        if comment == rule_comment(lab) if lab else comment.startswith(RULE_COMMENT_PREFIX):
            found.append(tokens)
    return found


def _referenced(listing: str, chain: str) -> bool:
    return any(line.split()[-2:] == ["-j", chain] for line in listing.splitlines())


def bridge_port(container_iflink: int, sys_class_net: Path | None = None) -> str:
    """The host interface whose index is ``container_iflink`` (a veth's host side)."""
    for entry in (sys_class_net or SYS_CLASS_NET).iterdir():
        try:
            if int((entry / "ifindex").read_text()) == container_iflink:
                return entry.name
        except (OSError, ValueError):
            continue
    raise ProvisionFailed(f"no host interface with index {container_iflink} (a veth of the lab)")
