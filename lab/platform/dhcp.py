"""The lab's DHCP server: dnsmasq, configured from the roster.

On Azure a VM learns the WireServer address from DHCP option 245 (and, on modern
images, a host route from option 121). The lab reproduces that with real dnsmasq so a
guest with DHCP disabled fails the way FACTS.md cause 4e describes. This module only
renders the command line; :mod:`lab.platform.fabric_main` runs it.

Choices, and why:

* ``--port=0``: DHCP only. The lab has no DNS to offer and must not answer for one.
* ``--dhcp-range=<network>,static``: only the roster's static leases are served, so a
  stray container on the lab network never gets a lease that points at the fabric.
* ``--dhcp-option-force``: dhclient does not request option 245 (or may not request
  121), and dnsmasq sends unrequested options only when forced.
* Option 121 routes 169.254.169.254/32 via the fabric, which carries that address on
  its loopback, so IMDS answers at once instead of the agent's ~31 s connect back-off.
  RFC 3442 clients then ignore option 3, which is fine on an internal lab network.
"""

from __future__ import annotations

import ipaddress

from lab.platform.roster import IMDS_ADDRESS, Roster

DEFAULT_INTERFACE = "eth0"
DEFAULT_LEASE_FILE = "/var/lib/snaplab/dnsmasq.leases"
DEFAULT_LOG_FILE = "/var/log/snaplab/dnsmasq.log"
# Long enough that no renewal happens during a drill, finite so that a guest whose
# DHCP client is stopped keeps a lease (as on Azure) rather than a never-expiring one.
DEFAULT_LEASE_TIME = "24h"

WIRESERVER_OPTION = 245
CLASSLESS_ROUTE_OPTION = 121


def option_245_value(ip: str) -> str:
    """The WireServer address as dnsmasq hex bytes (``10.199.0.2`` -> ``0a:c7:00:02``)."""
    address = ipaddress.IPv4Address(ip)
    return ":".join(f"{byte:02x}" for byte in address.packed)


def dnsmasq_argv(
    roster: Roster,
    *,
    executable: str = "dnsmasq",
    interface: str = DEFAULT_INTERFACE,
    lease_file: str = DEFAULT_LEASE_FILE,
    log_file: str = DEFAULT_LOG_FILE,
    lease_time: str = DEFAULT_LEASE_TIME,
) -> list[str]:
    """The full dnsmasq argv for a lab (foreground, DHCP only, static leases)."""
    network = ipaddress.IPv4Network(roster.subnet, strict=False)
    fabric = ipaddress.IPv4Address(roster.fabric_ip)
    if fabric not in network:
        raise ValueError(f"fabric address {fabric} is outside the lab subnet {network}")
    argv = [
        executable,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--no-resolv",
        "--no-hosts",
        f"--interface={interface}",
        "--user=root",
        f"--dhcp-range={network.network_address},static,{network.netmask},{lease_time}",
        "--dhcp-authoritative",
        f"--dhcp-leasefile={lease_file}",
        "--log-dhcp",
        f"--log-facility={log_file}",
        f"--dhcp-option-force={WIRESERVER_OPTION},{option_245_value(roster.fabric_ip)}",
        f"--dhcp-option-force={CLASSLESS_ROUTE_OPTION},{IMDS_ADDRESS}/32,{roster.fabric_ip}",
    ]
    for guest in roster.guests:
        address = ipaddress.IPv4Address(guest.ip)
        if address not in network:
            raise ValueError(f"guest {guest.name} address {address} is outside {network}")
        argv.append(f"--dhcp-host={guest.mac},{guest.ip},{guest.name}")
    return argv
