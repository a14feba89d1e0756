"""The real agent, in each packaged version, reaches Ready against the emulated fabric."""

from __future__ import annotations

import ipaddress
import re
import time

import pytest

from lab.platform.timescale import AGENT_STATUS_STALE_AFTER
from tests.integration.conftest import AGENT_VMS, RunningLab

pytestmark = pytest.mark.integration

VMS = [pytest.param(vm.name, vm.agent, id=vm.agent) for vm in AGENT_VMS]


def _waagent_version(lab: RunningLab, vm: str) -> str:
    first_line = lab.host(vm).check_output("waagent --version").splitlines()[0]
    match = re.match(r"WALinuxAgent-(\S+) running on", first_line)
    assert match, first_line
    return match.group(1)


@pytest.mark.parametrize(("vm", "agent"), VMS)
def test_agent_reports_ready_with_its_true_version(
    agents_lab: RunningLab, vm: str, agent: str
) -> None:
    view = agents_lab.fabric.vm(vm)
    assert view["agent"]["status"] == "Ready"
    assert view["agent"]["version"] == agent == _waagent_version(agents_lab, vm)


@pytest.mark.parametrize(("vm", "agent"), VMS)
def test_waagent_runs_under_systemd(agents_lab: RunningLab, vm: str, agent: str) -> None:
    host = agents_lab.host(vm)
    assert host.service("walinuxagent").is_running
    main_pid = int(host.check_output("systemctl show -p MainPID --value walinuxagent"))
    cmdline = host.file(f"/proc/{main_pid}/cmdline").content_string.replace("\0", " ")
    assert "waagent" in cmdline and "-daemon" in cmdline
    assert host.check_output(f"ps -o ppid= -p {main_pid}").strip() == "1"
    assert host.check_output("ps -o comm= -p 1").strip() == "systemd"


@pytest.mark.parametrize(("vm", "agent"), VMS)
def test_dhcp_lease_carries_option_245(agents_lab: RunningLab, vm: str, agent: str) -> None:
    lease = agents_lab.host(vm).file("/var/lib/dhcp/dhclient.eth0.leases")
    assert lease.exists
    match = re.search(r"option unknown-245 ([0-9a-f:]+);", lease.content_string)
    assert match, "no option 245 in the lease"
    octets = bytes(int(part, 16) for part in match.group(1).split(":"))
    assert str(ipaddress.IPv4Address(octets)) == agents_lab.roster.fabric_ip


@pytest.mark.parametrize(("vm", "agent"), VMS)
def test_waagent_log_names_the_wireserver_it_found(
    agents_lab: RunningLab, vm: str, agent: str
) -> None:
    log = agents_lab.host(vm).file("/var/log/waagent.log").content_string
    assert f"Wire server endpoint:{agents_lab.roster.fabric_ip}" in log


@pytest.mark.parametrize(("vm", "agent"), VMS)
def test_instance_view_agrees_with_the_guest(agents_lab: RunningLab, vm: str, agent: str) -> None:
    compute, arm = agents_lab.compute()
    view = compute.virtual_machines.instance_view(arm.resource_group, vm)
    assert view.vm_agent.vm_agent_version == _waagent_version(agents_lab, vm)
    assert view.vm_agent.statuses[0].display_status == "Ready"
    assert "PowerState/running" in [s.code for s in view.statuses]


def _agent_statuses(lab: RunningLab) -> dict[str, str]:
    compute, arm = lab.compute()
    return {
        vm.name: compute.virtual_machines.instance_view(arm.resource_group, vm.name)
        .vm_agent.statuses[0]
        .display_status
        for vm in AGENT_VMS
    }


def _wait_for(lab: RunningLab, wanted: str, seconds: float) -> dict[str, str]:
    deadline = time.monotonic() + seconds
    while True:
        seen = _agent_statuses(lab)
        if set(seen.values()) == {wanted} or time.monotonic() > deadline:
            return seen
        time.sleep(1)


def test_stopped_agent_turns_not_ready_and_start_brings_it_back(agents_lab: RunningLab) -> None:
    window = AGENT_STATUS_STALE_AFTER.lab_seconds()
    for vm in AGENT_VMS:
        agents_lab.host(vm.name).check_output("systemctl stop walinuxagent")
    try:
        seen = _wait_for(agents_lab, "Not Ready", window + 10)
        assert set(seen.values()) == {"Not Ready"}, seen
    finally:
        for vm in AGENT_VMS:
            agents_lab.host(vm.name).check_output("systemctl start walinuxagent")
    seen = _wait_for(agents_lab, "Ready", 60)
    assert set(seen.values()) == {"Ready"}, seen


def test_two_labs_do_not_see_each_other(agents_lab: RunningLab, second_lab: RunningLab) -> None:
    host = agents_lab.host(AGENT_VMS[1].name)
    other_fabric = second_lab.roster.fabric_ip
    reach = host.run(f"curl -s -m 3 -o /dev/null http://{other_fabric}/?comp=versions")
    assert reach.rc != 0
    own = host.run(f"curl -s -m 3 -o /dev/null http://{agents_lab.roster.fabric_ip}/?comp=versions")
    assert own.rc == 0
