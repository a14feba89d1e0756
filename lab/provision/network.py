"""The lab's own internal Docker network and the host firewall rules it needs.

Each lab gets an ``--internal`` bridge (nothing routed out, two labs never see each
other) with a /24 from a private pool. With br_netfilter on, Docker's isolation rules
also drop traffic *inside* such a bridge when it is not addressed to the subnet:
DHCP broadcasts (0.0.0.0 -> 255.255.255.255) and IMDS (169.254.169.254, answered by
the fabric, in both directions). ACCEPT rules in DOCKER-USER, limited to the lab's own bridge and
tagged with the lab's name, let exactly that through; teardown removes them.

What a guest may reach beyond that — only what an Azure VM reaches — is
:mod:`lab.provision.guest_reach`; :func:`guard_platform` puts it in place once the
fabric and storage are on the bridge, before any guest boots.
"""

from __future__ import annotations

import fcntl
import ipaddress
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError

from lab.errors import ProvisionFailed
from lab.platform.roster import CONTROL_PORT, IMDS_ADDRESS, Roster
from lab.provision import guest_reach
from lab.provision.labels import (
    LAB_LABEL,
    RULE_COMMENT_PREFIX,
    bridge_name,
    container_name,
    lab_labels,
    network_name,
    rule_comment,
)

POOL = ipaddress.IPv4Network("10.213.0.0/16")
CHAIN = "DOCKER-USER"
ROUTE_TABLE = Path("/proc/net/route")
SUBNET_LOCK = Path("/run/lock/snaplab-subnets.lock")


@dataclass(frozen=True)
class LabAddresses:
    """The fixed address plan of one lab subnet."""

    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def fabric(self) -> str:
        return str(self.subnet.network_address + 2)

    @property
    def storage(self) -> str:
        return str(self.subnet.network_address + 3)

    def guest(self, index: int) -> str:
        """Guests start at .10 (index 0), leaving room for platform parts."""
        return str(self.subnet.network_address + 10 + index)


def mac_for(ip: str) -> str:
    """Docker's own scheme (02:42 + the IPv4 bytes), fixed so DHCP can know it up front."""
    octets = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in octets)


def _used_subnets(client: docker.DockerClient) -> set[ipaddress.IPv4Network]:
    used: set[ipaddress.IPv4Network] = set()
    for net in client.networks.list():
        for config in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if "Subnet" in config:
                try:
                    used.add(ipaddress.IPv4Network(config["Subnet"]))
                except ValueError:
                    continue
    return used


def host_routes(text: str) -> set[ipaddress.IPv4Network]:
    """The networks of this machine's routing table (``/proc/net/route``'s hex fields):
    every engine's bridges on this machine, not only the ones one engine knows."""
    found: set[ipaddress.IPv4Network] = set()
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            found.add(ipaddress.IPv4Network(f"{destination}/{mask}"))
        except ValueError:
            continue
    return {net for net in found if net.prefixlen > 0}


def _host_subnets() -> set[ipaddress.IPv4Network]:
    try:
        return host_routes(ROUTE_TABLE.read_text())
    except OSError:
        return set()


@contextmanager
def _allocation_lock() -> Iterator[None]:
    """One lab's subnet chosen and its bridge made at a time on this machine: two engines
    never see each other's networks, so their labs would otherwise pick the same /24."""
    # One file for the whole machine, whatever state folder a process uses.
    path = (
        SUBNET_LOCK
        if SUBNET_LOCK.parent.is_dir()
        else Path(tempfile.gettempdir()) / SUBNET_LOCK.name
    )
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def create_network(client: docker.DockerClient, lab: str) -> LabAddresses:
    """Create the lab's internal bridge on the first free /24 of the pool (free on the
    engine and on this machine)."""
    with _allocation_lock():
        return _create_network(client, lab)


def _create_network(client: docker.DockerClient, lab: str) -> LabAddresses:
    used = _used_subnets(client) | _host_subnets()
    for subnet in POOL.subnets(new_prefix=24):
        if any(subnet.overlaps(u) for u in used):
            continue
        addresses = LabAddresses(subnet)
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=addresses.gateway)]
        )
        try:
            client.networks.create(
                network_name(lab),
                driver="bridge",
                internal=True,
                ipam=ipam,
                labels=lab_labels(lab, "network"),
                options={"com.docker.network.bridge.name": bridge_name(lab)},
            )
        except APIError as exc:
            if "overlap" in str(exc).lower():
                used.add(subnet)
                continue
            raise ProvisionFailed(
                f"could not create network for lab {lab}: {exc.explanation}"
            ) from exc
        return addresses
    raise ProvisionFailed(f"no free /24 left in {POOL} for lab {lab}")


def lab_addresses(client: docker.DockerClient, lab: str) -> LabAddresses:
    net = client.networks.get(network_name(lab))
    subnet = net.attrs["IPAM"]["Config"][0]["Subnet"]
    return LabAddresses(ipaddress.IPv4Network(subnet))


def _rule_specs(lab: str) -> list[list[str]]:
    bridge = bridge_name(lab)
    comment = ["-m", "comment", "--comment", rule_comment(lab)]
    same_bridge = ["-i", bridge, "-o", bridge]
    return [
        [
            *same_bridge,
            "-p",
            "udp",
            "-m",
            "multiport",
            "--dports",
            "67,68",
            *comment,
            "-j",
            "ACCEPT",
        ],
        [*same_bridge, "-d", f"{IMDS_ADDRESS}/32", *comment, "-j", "ACCEPT"],
        [*same_bridge, "-s", f"{IMDS_ADDRESS}/32", *comment, "-j", "ACCEPT"],
    ]


def add_firewall_rules(lab: str) -> None:
    """Insert the lab's DOCKER-USER ACCEPT rules (idempotent)."""
    iptables = _iptables()
    for spec in _rule_specs(lab):
        present = subprocess.run(
            [iptables, "-w", "-C", CHAIN, *spec], capture_output=True, check=False
        )
        if present.returncode == 0:
            continue
        done = subprocess.run(
            [iptables, "-w", "-I", CHAIN, "1", *spec], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ProvisionFailed(
                f"iptables could not add the lab's DHCP rule: {done.stderr.strip()}"
            )


def guard_platform(client: docker.DockerClient, roster: Roster) -> None:
    """Keep the lab's guests to what an Azure VM reaches (:mod:`lab.provision.guest_reach`).

    Needs the fabric and storage containers running: the rules name their bridge ports.
    """
    fabric = client.containers.get(container_name(roster.lab, "fabric"))
    storage = client.containers.get(container_name(roster.lab, "storage"))
    net = network_name(roster.lab)
    guest_reach.apply(
        guest_reach.Platform(
            lab=roster.lab,
            gateway=LabAddresses(ipaddress.IPv4Network(roster.subnet)).gateway,
            fabric_ip=roster.fabric_ip,
            fabric_port=_bridge_port(fabric),
            storage_port=_bridge_port(storage),
            control_port=CONTROL_PORT,
            fabric_pid=int(fabric.attrs["State"]["Pid"]),
            fabric_mac=str(fabric.attrs["NetworkSettings"]["Networks"][net]["MacAddress"]),
            storage_ip=roster.storage_ip,
            storage_mac=str(storage.attrs["NetworkSettings"]["Networks"][net]["MacAddress"]),
        )
    )


def _bridge_port(container: docker.models.containers.Container) -> str:
    """The host side of the container's veth: its eth0's peer index, found on the host."""
    code, output = container.exec_run(["cat", "/sys/class/net/eth0/iflink"])
    text = output.decode(errors="replace").strip() if isinstance(output, bytes) else ""
    if code != 0 or not text.isdigit():
        raise ProvisionFailed(f"cannot find {container.name}'s bridge port: {text or code}")
    return guest_reach.bridge_port(int(text))


def remove_firewall_rules(lab: str | None) -> int:
    """Delete the host firewall rules of one lab (of every lab when ``lab`` is None):
    its DOCKER-USER rules (DHCP, IMDS, NSG, the lab chain's jumps), then what
    :mod:`lab.provision.guest_reach` added elsewhere and the lab chain itself."""
    iptables = shutil.which("iptables")
    if iptables is None:
        return 0
    listing = subprocess.run(
        [iptables, "-w", "-S", CHAIN], capture_output=True, text=True, check=False
    ).stdout
    removed = 0
    for line in listing.splitlines():
        tokens = shlex.split(line)
        if tokens[:2] != ["-A", CHAIN] or not _belongs_to(tokens, lab):
            continue
        deleted = subprocess.run(
            [iptables, "-w", "-D", CHAIN, *tokens[2:]], capture_output=True, check=False
        )
        removed += deleted.returncode == 0
    return removed + guest_reach.remove(lab)


def _belongs_to(tokens: list[str], lab: str | None) -> bool:
    if "--comment" not in tokens:
        return False
    comment = tokens[tokens.index("--comment") + 1]
    return comment == rule_comment(lab) if lab else comment.startswith(RULE_COMMENT_PREFIX)


def remove_network(client: docker.DockerClient, lab: str | None) -> int:
    filters = {"label": f"{LAB_LABEL}={lab}" if lab else LAB_LABEL}
    removed = 0
    for net in client.networks.list(filters=filters):
        try:
            net.remove()
            removed += 1
        except APIError:
            continue
    return removed


def _iptables() -> str:
    path = shutil.which("iptables")
    if path is None:
        raise ProvisionFailed(
            "iptables is missing on this machine (needed for the lab's DHCP rule)"
        )
    return path
