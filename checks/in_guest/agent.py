"""The Azure Linux agent itself: its version, whether it runs, and whether systemd
would restart it (Microsoft's cause 2: "agent out of date / not running").

The agent's unit is ``walinuxagent`` on Debian and Ubuntu and ``waagent`` on RHEL and
SUSE: :mod:`checks.in_guest.agent_unit` finds which one this guest has."""

from __future__ import annotations

import re

from checks.context import GuestFacts
from checks.host import GuestHost
from checks.in_guest.agent_unit import AgentUnit, agent_unit, describe_missing
from checks.in_motion import Window, watch
from checks.result import CheckResult
from checks.versions import MINIMUM_AGENT, at_least
from lab.platform.timescale import AGENT_STATUS_STALE_AFTER

_INSTALLED = re.compile(r"WALinuxAgent-(\S+)")
_GOAL_STATE = re.compile(r"Goal state agent:\s*(\S+)")
_AGENT_PROCESS = re.compile(r"(waagent|WALinuxAgent\S*)\s.*-(daemon|run-exthandlers)\b")
# systemd states of a unit on its way up or down (a restart, Restart=always after a crash).
MOVING_STATES = ("activating", "deactivating", "reloading")
# Azure calls an agent that has not reported for 10 minutes Not Ready: an agent coming up
# gets that long before a diagnosis calls it not running.
STARTING = Window("the agent's start-up", AGENT_STATUS_STALE_AFTER)


def agent_version(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """``waagent --version``: the goal-state agent (what runs) against Azure's minimum."""
    check = "guest.agent_version"
    out = host.run("waagent --version 2>&1")
    installed = _INSTALLED.search(out.stdout)
    goal = _GOAL_STATE.search(out.stdout)
    if goal is None and installed is None:
        first = out.stdout.strip().splitlines()[:1] or [f"exit {out.rc}, no output"]
        return CheckResult.fail(check, f"waagent --version shows no agent version: {first[0]}")
    return judge_agent_version(
        installed.group(1) if installed else None, goal.group(1) if goal else None
    )


def judge_agent_version(installed: str | None, goal: str | None, where: str = "") -> CheckResult:
    """The version that runs (the goal-state agent, else the installed one) against
    Azure's minimum; ``where`` says where the versions were read (a bundle's log line).
    Shared by the in-guest check and the bundle's."""
    check = "guest.agent_version"
    version = goal if goal is not None else installed
    if version is None:
        return CheckResult.fail(check, f"no agent version found{where}")
    shown = f"WALinuxAgent {installed or '?'}"
    if goal is not None and installed is not None and goal != installed:
        shown += f" (goal state agent {goal})"
    shown += where
    if at_least(version):
        return CheckResult.ok(check, f"{shown}: at least the supported minimum {MINIMUM_AGENT}")
    return CheckResult.fail(
        check, f"{shown}: below Azure's minimum supported version {MINIMUM_AGENT}"
    )


def agent_running(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """A waagent daemon process (``ps``) and the service active (``systemctl``).

    An agent starting up (the unit ``activating``, or active before its daemon process
    shows) or being restarted is not a stopped agent: the check looks again every second
    until the unit settles, while the unit has been in that state for less than the
    10 minutes (Azure's clock, scaled) the platform gives a silent agent before it shows
    it Not Ready — counted from systemd's own state-change time, so a unit stuck
    stopping or starting for longer is judged at once. A unit that is inactive or failed
    has settled: that is judged at once too."""
    check = "guest.agent_running"
    window = STARTING.seconds(facts.time_scale)

    def remaining(seen: tuple[tuple[str, dict[str, str]], list[str]]) -> float | None:
        if not _starting(seen[0][1], seen[1]):
            return None
        age = _state_age(seen[0][1])
        return window if age is None else window - age

    settled = watch(lambda: (_service_state(host), _agent_processes(host)), remaining, window)
    (unit, service), processes = settled.value
    active = service.get("ActiveState") == "active"
    state = _describe_service(service)
    shown = ", ".join(processes) if processes else "no waagent process"
    detail = f"{unit}: {state}; {shown}"
    daemon = any("-daemon" in p for p in processes)
    if settled.moving:
        age = _state_age(service)
        spent = settled.waited if age is None else age
        detail += f" (not settled after {spent:.0f} s: {STARTING.describe(facts.time_scale)})"
    elif settled.waited > 0:
        detail += f" (watched it start for {settled.waited:.0f} s)"
    if active and daemon:
        return CheckResult.ok(check, detail)
    return CheckResult.fail(check, detail)


def _state_age(service: dict[str, str]) -> float | None:
    """Seconds the unit has been in its current state, by the guest's monotonic clock."""
    try:
        changed = int(service["StateChangeTimestampMonotonic"]) / 1e6
        now = float(service["uptime"])
    except (KeyError, ValueError):
        return None
    return now - changed if changed > 0 else None


def _starting(service: dict[str, str], processes: list[str]) -> bool:
    """The unit is on its way (up, or down for a restart), or up before its daemon is."""
    state = service.get("ActiveState")
    if state in MOVING_STATES:
        return True
    return state == "active" and not any("-daemon" in p for p in processes)


def agent_restart_policy(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """``systemctl show -p Restart``: ``no`` is the old-style unit that leaves a crashed
    agent dead; Azure's guidance is to configure auto-restart."""
    check = "guest.agent_restart_policy"
    unit = agent_unit(host, "Restart,FragmentPath,DropInPaths,LoadState")
    if unit is None or "Restart" not in unit.properties:
        return CheckResult.fail(check, f"{describe_missing()}: nothing restarts the agent")
    props = unit.properties
    where = props.get("FragmentPath", "?")
    if props.get("DropInPaths"):
        where += f" + {props['DropInPaths']}"
    restart = props["Restart"]
    if restart == "no":
        return CheckResult.fail(
            check, f"Restart=no ({where}): systemd does not restart the agent when it dies"
        )
    return CheckResult.ok(check, f"Restart={restart} ({where})")


def _service_state(host: GuestHost) -> tuple[str, dict[str, str]]:
    """The agent unit's name and properties, and ``uptime`` (CLOCK_MONOTONIC's seconds,
    which ``StateChangeTimestampMonotonic`` counts in microseconds)."""
    unit: AgentUnit | None = agent_unit(
        host,
        "LoadState,ActiveState,SubState,Result,"
        "ActiveEnterTimestamp,InactiveEnterTimestamp,ExecMainStatus,"
        "StateChangeTimestampMonotonic",
        then="echo uptime=$(cut -d' ' -f1 /proc/uptime)",
    )
    if unit is None:
        return describe_missing(), {"LoadState": "not-found"}
    return unit.name, unit.properties


def _describe_service(props: dict[str, str]) -> str:
    if props.get("LoadState") == "not-found":
        return "no such unit"
    active, sub = props.get("ActiveState", "?"), props.get("SubState", "?")
    text = f"{active} ({sub})"
    if active == "active" and props.get("ActiveEnterTimestamp"):
        text += f" since {props['ActiveEnterTimestamp']}"
    elif props.get("InactiveEnterTimestamp"):
        text += f" since {props['InactiveEnterTimestamp']}"
    result = props.get("Result")
    if result and result != "success":
        text += f", result {result}"
        if props.get("ExecMainStatus") not in (None, "", "0"):
            text += f" (exit status {props['ExecMainStatus']})"
    return text


def _agent_processes(host: GuestHost) -> list[str]:
    out = host.run("ps -eo pid=,etimes=,args=")
    found = []
    for line in out.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or not _AGENT_PROCESS.search(parts[2] + " "):
            continue
        role = "-daemon" if "-daemon" in parts[2] else "-run-exthandlers"
        found.append(f"pid {parts[0]} waagent {role} (up {parts[1]} s)")
    return found
