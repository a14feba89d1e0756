"""The agent checks against canned guest output (version, process/service, restart)."""

from __future__ import annotations

from checks.fakes import fake_context, healthy_host
from checks.in_guest.agent import agent_restart_policy, agent_running, agent_version

FACTS = fake_context().facts

STOPPED_SERVICE = (
    "Result=success\nExecMainStatus=0\nLoadState=loaded\nActiveState=inactive\nSubState=dead\n"
    "ActiveEnterTimestamp=Sat 2026-11-28 00:31:24 UTC\n"
    "InactiveEnterTimestamp=Sat 2026-11-28 00:33:49 UTC\n"
)
KILLED_SERVICE = (
    "Result=signal\nExecMainStatus=9\nLoadState=loaded\nActiveState=failed\nSubState=failed\n"
    "ActiveEnterTimestamp=Sat 2026-11-28 00:31:24 UTC\n"
    "InactiveEnterTimestamp=Sat 2026-11-28 00:35:00 UTC\n"
)
NO_AGENT_PS = "      1      60 /sbin/init\n     49      59 dhclient -4 eth0\n"


def test_current_agent_passes() -> None:
    result = agent_version(healthy_host(), FACTS)
    assert result.passed and "2.7.3.0" in result.detail


def test_agent_below_minimum_fails() -> None:
    host = healthy_host().on(
        "waagent --version",
        "WALinuxAgent-2.2.47 running on debian 12\nPython: 3.11.2\nGoal state agent: 2.2.47\n",
    )
    result = agent_version(host, FACTS)
    assert not result.passed
    assert "2.2.47" in result.detail and "2.2.53.1" in result.detail


def test_goal_state_agent_counts_over_the_installed_package() -> None:
    host = healthy_host().on(
        "waagent --version",
        "WALinuxAgent-2.2.47 running on debian 12\nPython: 3.11.2\nGoal state agent: 2.9.1.1\n",
    )
    result = agent_version(host, FACTS)
    assert result.passed and "goal state agent 2.9.1.1" in result.detail


def test_no_version_output_fails_with_what_was_printed() -> None:
    host = healthy_host().on("waagent --version", "sh: 1: waagent: not found\n", rc=127)
    result = agent_version(host, FACTS)
    assert not result.passed and "not found" in result.detail


def test_running_agent_passes() -> None:
    result = agent_running(healthy_host(), FACTS)
    assert result.passed
    assert "active (running)" in result.detail and "-daemon" in result.detail


def test_stopped_service_fails_with_state_and_no_process() -> None:
    host = healthy_host().on("systemctl show -p LoadState,ActiveState", STOPPED_SERVICE)
    host.on("ps -eo pid=,etimes=,args=", NO_AGENT_PS)
    result = agent_running(host, FACTS)
    assert not result.passed
    assert result.detail == (
        "walinuxagent: inactive (dead) since Sat 2026-11-28 00:33:49 UTC; no waagent process"
    )


def test_killed_agent_shows_signal() -> None:
    host = healthy_host().on("systemctl show -p LoadState,ActiveState", KILLED_SERVICE)
    host.on("ps -eo pid=,etimes=,args=", NO_AGENT_PS)
    result = agent_running(host, FACTS)
    assert not result.passed and "result signal (exit status 9)" in result.detail


def test_active_service_without_daemon_process_fails() -> None:
    host = healthy_host().on("ps -eo pid=,etimes=,args=", NO_AGENT_PS)
    assert not agent_running(host, FACTS).passed


def test_old_agent_process_names_are_recognised() -> None:
    old = (
        "   72   58 /usr/bin/python3 -u /usr/sbin/waagent -daemon\n"
        "  101   57 python3 -u bin/WALinuxAgent-2.2.47-py3.11.egg -run-exthandlers\n"
    )
    result = agent_running(healthy_host().on("ps -eo pid=,etimes=,args=", old), FACTS)
    assert result.passed and "-run-exthandlers" in result.detail


def test_restart_always_passes() -> None:
    result = agent_restart_policy(healthy_host(), FACTS)
    assert result.passed and "Restart=always" in result.detail


def test_restart_no_is_the_old_style_unit() -> None:
    host = healthy_host().on(
        "systemctl show -p Restart,",
        "Restart=no\nFragmentPath=/lib/systemd/system/walinuxagent.service\nLoadState=loaded\n",
    )
    result = agent_restart_policy(host, FACTS)
    assert not result.passed and result.detail.startswith("Restart=no")


def test_missing_unit_fails() -> None:
    host = healthy_host().on("systemctl show -p Restart,", "Restart=no\nLoadState=not-found\n")
    assert not agent_restart_policy(host, FACTS).passed
