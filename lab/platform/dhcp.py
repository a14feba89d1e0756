"""The lab's DHCP and DNS server: dnsmasq, configured from the roster.

On Azure a VM learns the WireServer address from DHCP option 245 (and, on modern
images, a host route from option 121), and its DNS server from option 6 — which on
Azure is the WireServer address itself (168.63.129.16 answers DNS). The lab reproduces
that with real dnsmasq so a guest with DHCP disabled fails the way FACTS.md cause 4e
describes. This module only renders the command line; :mod:`lab.platform.fabric_main`
runs it.

Choices, and why:

* DNS on port 53, but no upstream (``--no-resolv``) and no ``/etc/hosts``: the lab is
  an internal network, so the only names it can answer are its own — the services the
  fabric stands in for (``names``: the package mirror a guest's apt points at, the
  organisation's HTTP proxy) and the guests' own DHCP names. Anything else fails fast
  instead of timing out against a resolver nobody can reach.
* Option 6 names the WireServer address as DNS server, as on Azure. A guest only gets
  it through DHCP: a guest with static addressing keeps whatever resolv.conf it had.
* ``--dhcp-range=<network>,static``: only the roster's static leases are served, so a
  stray container on the lab network never gets a lease that points at the fabric.
* ``--dhcp-option-force``: dhclient does not request option 245 (or may not request
  121), and dnsmasq sends unrequested options only when forced. The agent's own DHCP
  request (DhcpHandler, wireserver.md §2) asks for nothing either.
* ``--dhcp-broadcast``: an answer to a client without an address yet is broadcast. The
  agent's own DHCP request (sent when it reads no lease it knows: Debian's agent reads
  only dhclient's lease files) asks for a unicast answer first, and on a guest whose
  DHCP client holds a UDP socket bound to the VM's address and port 68 (systemd-networkd,
  NetworkManager's internal client) the kernel hands that answer to the client's socket:
  the agent times out five times (about 3.5 minutes) before it asks for a broadcast.
  On Azure the agent rarely asks at all (a host route to 168.63.129.16 tells it the
  address); the lab's WireServer has no such route, so its DHCP server answers by
  broadcast, which every client receives.
* Option 121 routes 169.254.169.254/32 via the WireServer address, which the fabric
  answers for (169.254.169.254 is on its loopback), so IMDS answers at once instead of
  the agent's ~31 s connect back-off. RFC 3442 clients then ignore option 3, which is
  fine on an internal lab network.
* ``wireserver_ip`` defaults to the fabric's own address. After a redeploy
  (:mod:`lab.platform.redeploy`) it is the host's new address: the argv is rendered
  again and dnsmasq restarted, like a new host's DHCP server answering the VM.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from lab.platform.roster import IMDS_ADDRESS, Roster

DEFAULT_INTERFACE = "eth0"
DEFAULT_LEASE_FILE = "/var/lib/snaplab/dnsmasq.leases"
DEFAULT_LOG_FILE = "/var/log/snaplab/dnsmasq.log"
# Long enough that no renewal happens during a drill, finite so that a guest whose
# DHCP client is stopped keeps a lease (as on Azure) rather than a never-expiring one.
DEFAULT_LEASE_TIME = "24h"

WIRESERVER_OPTION = 245
CLASSLESS_ROUTE_OPTION = 121
DNS_SERVER_OPTION = 6


def option_245_value(ip: str) -> str:
    """The WireServer address as dnsmasq hex bytes (``10.199.0.2`` -> ``0a:c7:00:02``)."""
    address = ipaddress.IPv4Address(ip)
    return ":".join(f"{byte:02x}" for byte in address.packed)


def _in_subnet(what: str, ip: str, network: ipaddress.IPv4Network) -> None:
    if ipaddress.IPv4Address(ip) not in network:
        raise ValueError(f"{what} address {ip} is outside the lab subnet {network}")


def _dns_name(name: str) -> str:
    """A host name dnsmasq can take in ``--address=/name/ip`` (no slashes, no spaces)."""
    labels = name.rstrip(".").split(".")
    if not name or any(not label or not label.replace("-", "").isalnum() for label in labels):
        raise ValueError(f"not a DNS name: {name!r}")
    return name.rstrip(".").lower()


def dnsmasq_argv(
    roster: Roster,
    *,
    executable: str = "dnsmasq",
    interface: str = DEFAULT_INTERFACE,
    lease_file: str = DEFAULT_LEASE_FILE,
    log_file: str = DEFAULT_LOG_FILE,
    lease_time: str = DEFAULT_LEASE_TIME,
    wireserver_ip: str | None = None,
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """The full dnsmasq argv for a lab (foreground, static leases, the lab's own names).

    ``names`` maps host names the lab answers in DNS to addresses in the lab subnet.
    """
    network = ipaddress.IPv4Network(roster.subnet, strict=False)
    _in_subnet("fabric", roster.fabric_ip, network)
    wireserver = wireserver_ip or roster.fabric_ip
    _in_subnet("WireServer", wireserver, network)
    argv = [
        executable,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        f"--interface={interface}",
        "--user=root",
        f"--dhcp-range={network.network_address},static,{network.netmask},{lease_time}",
        "--dhcp-authoritative",
        "--dhcp-broadcast",
        f"--dhcp-leasefile={lease_file}",
        "--log-dhcp",
        f"--log-facility={log_file}",
        f"--dhcp-option-force={WIRESERVER_OPTION},{option_245_value(wireserver)}",
        f"--dhcp-option-force={CLASSLESS_ROUTE_OPTION},{IMDS_ADDRESS}/32,{wireserver}",
        f"--dhcp-option={DNS_SERVER_OPTION},{wireserver}",
    ]
    for name, ip in sorted((names or {}).items()):
        _in_subnet(f"DNS name {name}", ip, network)
        argv.append(f"--address=/{_dns_name(name)}/{ip}")
    for guest in roster.guests:
        _in_subnet(f"guest {guest.name}", guest.ip, network)
        argv.append(f"--dhcp-host={guest.mac},{guest.ip},{guest.name}")
    return argv
