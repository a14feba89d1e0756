"""eth0's addressing on each network stack (ifupdown, netplan + systemd-networkd,
NetworkManager) and option 245 as each DHCP client records it, against canned output."""

from __future__ import annotations

from checks.fakes import (
    NETPLAN_NETWORK,
    NETWORKD_LEASE,
    fake_context,
    healthy_host,
    netplan_host,
    networkmanager_host,
)
from checks.in_guest.leases import dhclient_option_245, networkd_option_245, nm_option_245
from checks.in_guest.netstack import network_stack
from checks.in_guest.network import dhcp

FACTS = fake_context().facts


def test_each_lease_shape_decodes_to_the_same_address() -> None:
    assert dhclient_option_245("lease {\n option unknown-245 a8:3f:81:10;\n}") == "168.63.129.16"
    assert networkd_option_245("ADDRESS=10.0.0.4\nOPTION_245=A83F8110\n") == "168.63.129.16"
    assert nm_option_245("DHCP4.OPTION[7]:private_245 = a8:3f:81:10\n") == "168.63.129.16"
    assert nm_option_245("DHCP4.OPTION[7]:private_245 = a83f8110\n") == "168.63.129.16"


def test_leases_without_option_245() -> None:
    assert networkd_option_245("ADDRESS=10.0.0.4\nOPTION_244=01020304\n") is None
    assert nm_option_245("DHCP4.OPTION[1]:ip_address = 10.0.0.4\n") is None


def test_debian_guest_is_ifupdown() -> None:
    stack = network_stack(healthy_host())
    assert (stack.stack, stack.dhcp, stack.client_running) == ("ifupdown", True, True)
    assert stack.option_245 == "10.213.9.2"


def test_netplan_guest_is_judged_by_networkd() -> None:
    host = netplan_host()
    stack = network_stack(host)
    assert (stack.stack, stack.dhcp, stack.method) == ("systemd-networkd", True, "DHCP=ipv4")
    assert stack.lease == NETWORKD_LEASE and stack.option_245 == "10.213.9.2"
    result = dhcp(host, FACTS)
    assert result.passed, result.detail
    assert NETPLAN_NETWORK in result.detail and "dhcp4: true" in result.detail
    assert not host.ran("iface[[:space:]]"), "ifupdown was asked although networkd manages eth0"


def test_netplan_static_fails() -> None:
    host = netplan_host()
    host.file(NETPLAN_NETWORK, "[Match]\nName=eth0\n\n[Network]\nAddress=10.213.9.10/24\n")
    host.on("dhcp4:", "/etc/netplan/50-static.yaml:      dhcp4: false\n")
    host.on(f"cat {NETWORKD_LEASE}", "", rc=1)
    result = dhcp(host, FACTS)
    assert not result.passed
    assert "Address= only (static)" in result.detail and "no DHCP lease" in result.detail


def test_networkd_leaving_eth0_unmanaged_falls_back_to_ifupdown() -> None:
    host = healthy_host().on(
        "for u in NetworkManager systemd-networkd", "NetworkManager=\nsystemd-networkd=active\n"
    )
    host.on("networkctl list", "  2 eth0 ether routable unmanaged\n")
    assert network_stack(host).stack == "ifupdown"


def test_networkmanager_guest() -> None:
    host = networkmanager_host()
    stack = network_stack(host)
    assert (stack.stack, stack.dhcp, stack.method) == ("NetworkManager", True, "ipv4.method auto")
    result = dhcp(host, FACTS)
    assert result.passed, result.detail
    assert "connection 'System eth0'" in result.detail and "10.213.9.2" in result.detail


def test_networkmanager_manual_fails() -> None:
    host = networkmanager_host().on(
        "nmcli -t -f ipv4.method connection show", "ipv4.method:manual\n"
    )
    host.on("nmcli -t -f DHCP4 device show eth0", "")
    result = dhcp(host, FACTS)
    assert not result.passed
    assert "ipv4.method manual" in result.detail and "DHCP client not running" in result.detail


def test_networkmanager_dhclient_backend_lease() -> None:
    lease = "/var/lib/NetworkManager/dhclient-5f1c-eth0.lease"
    host = networkmanager_host().on("nmcli -t -f DHCP4 device show eth0", "DHCP4.OPTION[1]:x = 1\n")
    host.on("ls -1t /var/lib/NetworkManager/*eth0.lease", lease + "\n")
    host.file(lease, "lease {\n  option unknown-245 a:d5:9:2;\n}\n")
    stack = network_stack(host)
    assert stack.lease == lease and stack.option_245 == "10.213.9.2"


def test_networkmanager_unmanaged_device_is_not_its() -> None:
    host = networkmanager_host().on(
        "nmcli -t -f GENERAL.STATE,GENERAL.CONNECTION device show eth0",
        "GENERAL.STATE:10 (unmanaged)\nGENERAL.CONNECTION:\n",
    )
    host.on("iface[[:space:]]", "/etc/network/interfaces.d/eth0:iface eth0 inet dhcp\n")
    assert network_stack(host).stack == "ifupdown"


def test_firewall_dropping_dhcp_fails_on_every_stack() -> None:
    rule = "-A OUTPUT -p udp -m udp --dport 67 -j DROP\n"
    for host in (healthy_host(), netplan_host(), networkmanager_host()):
        result = dhcp(host.on("iptables -S", rule), FACTS)
        assert not result.passed and "guest firewall drops DHCP" in result.detail
