"""Option 245 (the WireServer address) as each DHCP client records it.

Three clients, three shapes, all read by the agent or by an engineer on a real VM:

- ISC dhclient (ifupdown on Debian, NetworkManager's ``dhcp=dhclient`` backend on older
  RHEL): ``option unknown-245 a8:3f:81:10;`` in a ``lease { }`` block of
  ``/var/lib/dhcp/dhclient.*.leases`` (or ``/var/lib/NetworkManager/dhclient-*.lease``);
  the last block is the newest. WALinuxAgent ``osutil/default.py``
  ``get_endpoint_from_leases_path`` reads this shape.
- systemd-networkd (netplan on Ubuntu): ``OPTION_245=A83F8110`` in
  ``/run/systemd/netif/leases/<ifindex>`` (systemd saves DHCP options 224-254 as
  ``OPTION_<code>`` hex); WALinuxAgent 2.10+ ``osutil/ubuntu.py`` reads it there.
- NetworkManager's internal client: ``private_245 = a8:3f:81:10`` among the
  ``DHCP4.OPTION[...]`` lines of ``nmcli -t -f DHCP4 device show eth0``.
"""

from __future__ import annotations

import ipaddress
import re

_DHCLIENT = re.compile(r"option\s+unknown-245\s+([0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){3})\s*;")
_NETWORKD = re.compile(r"^OPTION_245=([0-9a-fA-F]{8})\s*$", re.MULTILINE)
_NM = re.compile(r"private_245\s*=\s*([0-9a-fA-F]{1,2}(?::[0-9a-fA-F]{1,2}){3}|[0-9a-fA-F]{8})\b")


def dhclient_option_245(lease_text: str) -> str | None:
    """The address in the last ``option unknown-245 a:b:c:d;`` of a dhclient lease file."""
    found = _DHCLIENT.findall(lease_text)
    return _address(found[-1].split(":")) if found else None


def networkd_option_245(lease_text: str) -> str | None:
    """The address in ``OPTION_245=<8 hex digits>`` of a systemd-networkd lease file."""
    found = _NETWORKD.search(lease_text)
    return _address(_pairs(found.group(1))) if found else None


def nm_option_245(dhcp4_text: str) -> str | None:
    """The address in ``private_245 = ...`` of nmcli's DHCP4 options."""
    found = _NM.search(dhcp4_text)
    if found is None:
        return None
    value = found.group(1)
    return _address(value.split(":") if ":" in value else _pairs(value))


def _pairs(hex_digits: str) -> list[str]:
    return [hex_digits[i : i + 2] for i in range(0, len(hex_digits), 2)]


def _address(octets: list[str]) -> str:
    return str(ipaddress.IPv4Address(bytes(int(part, 16) for part in octets)))
