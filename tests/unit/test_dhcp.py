"""The dnsmasq command line rendered from a roster."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import pytest

from lab.platform.dhcp import dnsmasq_argv, option_245_value
from lab.platform.roster import GuestEntry
from tests.unit.fabric_samples import make_roster


def test_option_245_is_hex_bytes() -> None:
    assert option_245_value("10.199.0.2") == "0a:c7:00:02"
    assert option_245_value("168.63.129.16") == "a8:3f:81:10"
    with pytest.raises(ValueError):
        option_245_value("not-an-ip")


def test_argv_serves_static_leases_and_points_at_the_fabric() -> None:
    argv = dnsmasq_argv(make_roster())
    assert argv[0] == "dnsmasq"
    assert "--keep-in-foreground" in argv
    assert "--interface=eth0" in argv
    assert "--dhcp-authoritative" in argv
    assert "--dhcp-broadcast" in argv  # the agent's own request is answered to it too
    assert "--log-dhcp" in argv
    assert "--log-facility=/var/log/snaplab/dnsmasq.log" in argv
    assert any(a.startswith("--dhcp-leasefile=") for a in argv)
    ranges = [a for a in argv if a.startswith("--dhcp-range=")]
    assert len(ranges) == 1 and ranges[0].startswith("--dhcp-range=10.199.0.0,static")
    assert "--dhcp-option-force=245,0a:c7:00:02" in argv
    assert "--dhcp-option-force=121,169.254.169.254/32,10.199.0.2" in argv
    assert "--dhcp-host=02:42:0a:c7:00:0b,10.199.0.11,vm1" in argv
    assert "--dhcp-host=02:42:0a:c7:00:0c,10.199.0.12,vm2" in argv


def test_dns_answers_only_the_lab_names_and_is_handed_out_as_option_6() -> None:
    """As on Azure, the DNS server a guest gets by DHCP is the WireServer address."""
    argv = dnsmasq_argv(
        make_roster(),
        names={
            "debian-mirror.snaplab.internal": "10.199.0.2",
            "Proxy.Snaplab.Internal.": "10.199.0.2",
        },
    )
    assert "--port=0" not in argv  # DNS on
    assert "--no-resolv" in argv and "--no-hosts" in argv  # no upstream: only lab names
    assert "--dhcp-option=6,10.199.0.2" in argv
    assert "--address=/debian-mirror.snaplab.internal/10.199.0.2" in argv
    assert "--address=/proxy.snaplab.internal/10.199.0.2" in argv


def test_names_must_be_dns_names_in_the_lab() -> None:
    with pytest.raises(ValueError):
        dnsmasq_argv(make_roster(), names={"mirror": "10.200.0.2"})
    for bad in ("a/b", "", "a..b", "sp ace"):
        with pytest.raises(ValueError):
            dnsmasq_argv(make_roster(), names={bad: "10.199.0.2"})


def test_a_redeployed_host_hands_out_its_new_address() -> None:
    """After a redeploy, options 245, 121 and 6 all name the new WireServer address."""
    argv = dnsmasq_argv(make_roster(), wireserver_ip="10.199.0.9")
    assert "--dhcp-option-force=245,0a:c7:00:09" in argv
    assert "--dhcp-option-force=121,169.254.169.254/32,10.199.0.9" in argv
    assert "--dhcp-option=6,10.199.0.9" in argv
    assert not any("0a:c7:00:02" in a for a in argv)
    with pytest.raises(ValueError):
        dnsmasq_argv(make_roster(), wireserver_ip="10.200.0.9")


def test_argv_options() -> None:
    argv = dnsmasq_argv(
        make_roster(),
        executable="/usr/sbin/dnsmasq",
        interface="eth1",
        lease_file="/tmp/l",
        log_file="/tmp/d.log",
    )
    assert argv[0] == "/usr/sbin/dnsmasq"
    assert "--interface=eth1" in argv
    assert "--dhcp-leasefile=/tmp/l" in argv
    assert "--log-facility=/tmp/d.log" in argv


def test_addresses_outside_the_subnet_are_refused() -> None:
    roster = make_roster()
    with pytest.raises(ValueError):
        dnsmasq_argv(replace(roster, fabric_ip="10.200.0.2"))
    stray = GuestEntry("vm9", "10.200.0.9", "02:00:00:00:00:09", "2.7.3.0", "c")
    with pytest.raises(ValueError):
        dnsmasq_argv(replace(roster, guests=(*roster.guests, stray)))


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq not installed")
def test_dnsmasq_accepts_the_argv() -> None:
    argv = dnsmasq_argv(
        make_roster(),
        lease_file="/tmp/x.leases",
        log_file="/tmp/x.log",
        names={"debian-mirror.snaplab.internal": "10.199.0.2"},
        wireserver_ip="10.199.0.9",
    )
    result = subprocess.run([*argv, "--test"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
