"""The agent's systemd unit found by observation: walinuxagent.service (Debian, Ubuntu)
or waagent.service (RHEL, SUSE), or whatever unit runs waagent."""

from __future__ import annotations

from checks.fakes import fake_context, healthy_host, waagent_unit_host
from checks.in_guest.agent import agent_restart_policy, agent_running
from checks.in_guest.agent_unit import agent_unit, choose, parse_show

FACTS = fake_context().facts
KNOWN = ("walinuxagent.service", "waagent.service")


def test_blocks_are_named_by_id_or_by_place() -> None:
    shown = parse_show("LoadState=loaded\n\nId=waagent.service\nLoadState=not-found\n", KNOWN)
    assert [unit for unit, _ in shown] == ["walinuxagent.service", "waagent.service"]


def test_a_unit_systemd_does_not_know_is_never_the_agents() -> None:
    shown = [("walinuxagent.service", {"LoadState": "not-found"})]
    assert choose(shown) is None


def test_active_unit_wins_over_an_enabled_leftover() -> None:
    shown = [
        ("walinuxagent.service", {"LoadState": "loaded", "UnitFileState": "enabled"}),
        ("waagent.service", {"LoadState": "loaded", "ActiveState": "active"}),
    ]
    found = choose(shown)
    assert found is not None and found.name == "waagent"


def test_enabled_unit_wins_when_neither_runs() -> None:
    shown = [
        ("walinuxagent.service", {"LoadState": "loaded", "UnitFileState": "disabled"}),
        ("waagent.service", {"LoadState": "loaded", "UnitFileState": "enabled"}),
    ]
    found = choose(shown)
    assert found is not None and found.name == "waagent"


def test_rhel_style_unit_is_found_and_judged() -> None:
    host = waagent_unit_host()
    running = agent_running(host, FACTS)
    assert running.passed and running.detail.startswith("waagent: active (running)")
    policy = agent_restart_policy(host, FACTS)
    assert policy.passed and "/usr/lib/systemd/system/waagent.service" in policy.detail


def test_stopped_rhel_style_unit_names_waagent() -> None:
    host = waagent_unit_host().on(
        "systemctl show -p LoadState,ActiveState",
        "Id=walinuxagent.service\nLoadState=not-found\n\nId=waagent.service\nLoadState=loaded\n"
        "ActiveState=inactive\nSubState=dead\nResult=success\n"
        "InactiveEnterTimestamp=Sat 2026-11-28 00:33:49 UTC\n",
    )
    host.on("ps -eo pid=,etimes=,args=", "      1      60 /sbin/init\n")
    result = agent_running(host, FACTS)
    assert not result.passed
    assert result.detail == (
        "waagent: inactive (dead) since Sat 2026-11-28 00:33:49 UTC; no waagent process"
    )


def test_a_renamed_unit_running_waagent_is_found_by_its_execstart() -> None:
    host = healthy_host().on(
        "systemctl show -p Restart,", "LoadState=not-found\n\nLoadState=not-found\n"
    )
    host.on("grep -l -E '^ExecStart=.*waagent'", "/etc/systemd/system/azure-agent.service\n")
    host.on(
        "systemctl show -p Restart,FragmentPath,DropInPaths,LoadState,Id,LoadState,ActiveState,"
        "UnitFileState azure-agent.service",
        "Id=azure-agent.service\nRestart=on-failure\nLoadState=loaded\n"
        "FragmentPath=/etc/systemd/system/azure-agent.service\n",
    )
    found = agent_unit(host, "Restart,FragmentPath,DropInPaths,LoadState")
    assert found is not None and found.name == "azure-agent"
    assert agent_restart_policy(host, FACTS).passed


def test_trailing_command_output_joins_the_units_properties() -> None:
    host = healthy_host().on(
        "systemctl show -p X",
        "Id=walinuxagent.service\nLoadState=loaded\n\nId=waagent.service\n"
        "LoadState=not-found\n\nuptime=123.4\n",
    )
    found = agent_unit(host, "X", then="echo uptime=1")
    assert found is not None and found.properties["uptime"] == "123.4"
