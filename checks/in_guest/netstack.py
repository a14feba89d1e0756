"""How eth0 gets its address, whichever network stack the distribution uses.

An Azure VM must take its address by DHCP, and the DHCP answer carries option 245, the
WireServer address the agent needs (FACTS.md cause 4e). Distributions configure eth0
with different stacks, so the question "is eth0 on DHCP, is a DHCP client running for
it, did its lease carry option 245" has three sets of answers:

- **NetworkManager** (RHEL, SUSE, Fedora): the device's active connection and its
  ``ipv4.method`` (``auto`` is DHCP, ``manual`` static), read with ``nmcli``; NetworkManager
  itself is the DHCP client (its internal one, or dhclient it starts), and the lease's
  options show in ``nmcli -f DHCP4 device show``.
- **systemd-networkd**, usually written by **netplan** (Ubuntu): ``networkctl`` names the
  ``.network`` file in force (netplan's ``/run/systemd/network/10-netplan-eth0.network``,
  generated from ``/etc/netplan/*.yaml`` ``dhcp4: true``); its ``DHCP=`` is the method;
  networkd is the DHCP client and saves the lease in ``/run/systemd/netif/leases/<ifindex>``.
- **ifupdown** (Debian): ``iface eth0 inet dhcp`` in ``/etc/network/interfaces*``, a
  ``dhclient`` process for eth0, its lease in ``/var/lib/dhcp/dhclient*.leases``.

The stack is the one that manages eth0 *now*: NetworkManager when it runs and has the
device managed, else systemd-networkd when it runs and has eth0 configured, else
ifupdown's stanza. Only what the guest shows is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from checks.host import GuestHost, quote, read_file
from checks.in_guest.leases import dhclient_option_245, networkd_option_245, nm_option_245

INTERFACE = "eth0"
DHCLIENT_LEASES = "/var/lib/dhcp/dhclient*.leases"
NETWORKD_LEASES = "/run/systemd/netif/leases"
NM_LEASES = "/var/lib/NetworkManager"
NETPLAN_YAML = "/etc/netplan/*.yaml"
_IFACE = re.compile(rf"^\s*iface\s+{INTERFACE}\s+inet\s+(\S+)", re.MULTILINE)
_DHCP_CLIENT = re.compile(r"\b(dhclient|dhcpcd|udhcpc)\b")
# networkd's DHCP= values that turn the IPv4 client on (systemd.network(5)).
_NETWORKD_DHCP4 = ("yes", "ipv4", "true", "on", "1")


@dataclass(frozen=True)
class StackState:
    """What one network stack says about eth0's addressing.

    ``dhcp`` is True/False when the stack's configuration says DHCP / static, None when
    no configuration for eth0 was found. ``method`` is that configuration in the stack's
    own words (``inet dhcp``, ``DHCP=ipv4``, ``ipv4.method auto``), ``source`` where it
    was read. ``lease`` names where option 245 was looked for."""

    stack: str
    dhcp: bool | None
    method: str
    source: str
    client: str
    client_running: bool
    lease: str | None
    option_245: str | None


def network_stack(host: GuestHost) -> StackState:
    """eth0's addressing as the stack that manages it reports it."""
    active = _active_units(host)
    if active.get("NetworkManager") == "active":
        state = _networkmanager(host)
        if state is not None:
            return state
    if active.get("systemd-networkd") == "active":
        state = _networkd(host)
        if state is not None:
            return state
    return _ifupdown(host)


def _active_units(host: GuestHost) -> dict[str, str]:
    out = host.run(
        "for u in NetworkManager systemd-networkd; do "
        'echo "$u=$(systemctl is-active "$u".service 2>/dev/null)"; done'
    )
    values = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def _nmcli_fields(text: str) -> dict[str, str]:
    """``nmcli -t`` output: ``FIELD:value`` lines (the first colon separates)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _networkmanager(host: GuestHost) -> StackState | None:
    """None when NetworkManager does not manage eth0 (unmanaged, or no such device)."""
    device = _nmcli_fields(
        host.run(
            f"nmcli -t -f GENERAL.STATE,GENERAL.CONNECTION device show {INTERFACE} 2>/dev/null"
        ).stdout
    )
    state = device.get("GENERAL.STATE", "")
    if not state or state.startswith("10 "):  # 10 (unmanaged)
        return None
    connection = device.get("GENERAL.CONNECTION", "")
    client = "NetworkManager"
    if not connection or connection == "--":
        return StackState(
            "NetworkManager",
            None,
            f"no active connection (device state {state})",
            f"nmcli device show {INTERFACE}",
            client,
            False,
            None,
            None,
        )
    method = _nmcli_fields(
        host.run(f"nmcli -t -f ipv4.method connection show {quote(connection)}").stdout
    ).get("ipv4.method", "?")
    dhcp4 = host.run(f"nmcli -t -f DHCP4 device show {INTERFACE} 2>/dev/null").stdout
    option = nm_option_245(dhcp4)
    lease: str | None = f"nmcli -f DHCP4 device show {INTERFACE}"
    if option is None:  # NetworkManager's dhclient backend keeps a dhclient-format lease
        newest = _newest(host, f"{NM_LEASES}/*{INTERFACE}.lease")
        text = read_file(host, newest) if newest else None
        if text is not None and dhclient_option_245(text) is not None:
            lease, option = newest, dhclient_option_245(text)
    return StackState(
        "NetworkManager",
        method == "auto",
        f"ipv4.method {method}",
        f"connection '{connection}'",
        client,
        "DHCP4.OPTION" in dhcp4,
        lease,
        option,
    )


def _networkd(host: GuestHost) -> StackState | None:
    """None when systemd-networkd leaves eth0 alone (unmanaged, or not listed)."""
    listed = host.run("networkctl list --no-pager --no-legend 2>/dev/null").stdout
    row = next(
        (line.split() for line in listed.splitlines() if f" {INTERFACE} " in f" {line} "), None
    )
    if row is None or row[-1] == "unmanaged":
        return None
    status = host.run(f"networkctl status {INTERFACE} --no-pager 2>/dev/null").stdout
    found = re.search(r"Network File:\s*(\S+)", status)
    network_file = found.group(1) if found and found.group(1) != "n/a" else None
    dhcp: bool | None = None
    method = "no .network file"
    if network_file:
        text = read_file(host, network_file) or ""
        value = _last_setting(text, "DHCP")
        dhcp = value is not None and value.lower() in _NETWORKD_DHCP4
        method = f"DHCP={value}" if value is not None else "no DHCP= (static)"
        if "Address=" in text and value is None:
            method = "Address= only (static)"
    source = network_file or f"networkctl status {INTERFACE}"
    if network_file and "netplan" in network_file:
        source += f", from netplan {_netplan_summary(host)}"
    ifindex = (read_file(host, f"/sys/class/net/{INTERFACE}/ifindex") or "").strip()
    lease_path = f"{NETWORKD_LEASES}/{ifindex}" if ifindex.isdigit() else None
    lease_text = read_file(host, lease_path) if lease_path else None
    return StackState(
        "systemd-networkd",
        dhcp,
        method,
        source,
        "systemd-networkd",
        dhcp is True and lease_text is not None,
        lease_path if lease_text is not None else None,
        networkd_option_245(lease_text or ""),
    )


def _last_setting(text: str, key: str) -> str | None:
    """The last ``Key=value`` of an INI-style unit file (systemd: the last one wins)."""
    value = None
    for line in text.splitlines():
        name, sep, rest = line.strip().partition("=")
        if sep and name.strip() == key:
            value = rest.strip()
    return value


def _netplan_summary(host: GuestHost) -> str:
    out = host.run(f"grep -H -E '^[[:space:]]*dhcp4:' {NETPLAN_YAML} 2>/dev/null")
    lines = [" ".join(line.split()) for line in out.stdout.splitlines() if line.strip()]
    return "; ".join(lines) if lines else f"{NETPLAN_YAML} (no dhcp4: line)"


def _ifupdown(host: GuestHost) -> StackState:
    conf = host.run(
        "grep -H -E '^[[:space:]]*iface[[:space:]]' "
        "/etc/network/interfaces /etc/network/interfaces.d/* 2>/dev/null"
    )
    method, source = None, f"no ifupdown stanza for {INTERFACE}"
    for line in conf.stdout.splitlines():
        path, _, stanza = line.partition(":")
        match = _IFACE.match(stanza)
        if match:
            method, source = match.group(1), path
    procs = host.run("ps -eo args=")
    client = any(
        _DHCP_CLIENT.search(args) and INTERFACE in args for args in procs.stdout.splitlines()
    )
    newest = _newest(host, DHCLIENT_LEASES)
    option = dhclient_option_245(read_file(host, newest) or "") if newest else None
    return StackState(
        "ifupdown" if method else "no network stack found",
        None if method is None else method == "dhcp",
        f"inet {method}" if method else "",
        source,
        "dhclient",
        client,
        newest,
        option,
    )


def _newest(host: GuestHost, pattern: str) -> str | None:
    return host.run(f"ls -1t {pattern} 2>/dev/null | head -n 1").stdout.strip() or None
