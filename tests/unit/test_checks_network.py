"""DHCP and option 245, the WireServer endpoint, and storage on the extension's path."""

from __future__ import annotations

from checks.fakes import HEALTHY_CONF, LEASE, fake_context, healthy_host
from checks.in_guest.network import dhcp, option_245_address, storage_reachable, wireserver

FACTS = fake_context().facts


def test_option_245_is_decoded_from_the_lease() -> None:
    lease = (
        "lease {\n option unknown-245 a:d5:1:2;\n}\nlease {\n option unknown-245 a8:3f:81:10;\n}"
    )
    assert option_245_address(lease) == "168.63.129.16"
    assert option_245_address("lease { }") is None


def test_dhcp_healthy() -> None:
    result = dhcp(healthy_host(), FACTS)
    assert result.passed and "option 245 = 10.213.9.2" in result.detail


def test_static_addressing_without_dhcp_client_fails() -> None:
    host = healthy_host().on(
        "iface[[:space:]]", "/etc/network/interfaces.d/eth0:iface eth0 inet static\n"
    )
    host.on("ps -eo args=", "/sbin/init\n/usr/bin/python3 -u /usr/sbin/waagent -daemon\n")
    result = dhcp(host, FACTS)
    assert not result.passed
    assert "inet static" in result.detail and "DHCP client not running" in result.detail


def test_lease_without_option_245_fails() -> None:
    host = healthy_host().file(LEASE, 'lease {\n  interface "eth0";\n}\n')
    result = dhcp(host, FACTS)
    assert not result.passed and "no option 245" in result.detail


def test_wireserver_answers() -> None:
    assert wireserver(healthy_host(), FACTS).passed


def test_wireserver_silent_fails_with_curls_reason() -> None:
    host = healthy_host().on(
        "curl -sS --max-time 5 -w",
        "curl: (28) Connection timed out after 5001 milliseconds\n\n000",
        rc=28,
    )
    result = wireserver(host, FACTS)
    assert not result.passed and "Connection timed out" in result.detail


def test_no_endpoint_file_fails() -> None:
    host = healthy_host().on("cat /var/lib/waagent/WireServerEndpoint", "", rc=1)
    assert not wireserver(host, FACTS).passed


def test_storage_direct() -> None:
    host = healthy_host()
    assert storage_reachable(host, FACTS).passed
    assert host.ran("/dev/tcp/10.213.9.3/10000")


def test_storage_dropped_fails() -> None:
    host = healthy_host().on("timeout 3 bash -c", "", rc=124)
    result = storage_reachable(host, FACTS)
    assert not result.passed and "packets dropped" in result.detail


def test_storage_through_the_agents_proxy_counts_even_when_direct_is_blocked() -> None:
    conf = HEALTHY_CONF + "HttpProxy.Host=10.213.9.4\nHttpProxy.Port=3128\n"
    host = healthy_host().file("/etc/waagent.conf", conf).on("timeout 3 bash -c", "", rc=124)
    host.on("--proxy", "400")
    result = storage_reachable(host, FACTS)
    assert result.passed and "via HttpProxy http://10.213.9.4:3128: HTTP 400" in result.detail
    host.on("--proxy", "curl: (7) Failed to connect to 10.213.9.4 port 3128\n000", rc=7)
    assert not storage_reachable(host, FACTS).passed


def test_guest_firewall_dropping_dhcp_fails() -> None:
    host = healthy_host().on(
        "iptables -S",
        "-P INPUT ACCEPT\n-A OUTPUT -p udp -m udp --dport 67 -m comment --comment "
        '"static addressing: no DHCP" -j DROP\n',
    )
    result = dhcp(host, FACTS)
    assert not result.passed and "guest firewall drops DHCP" in result.detail
