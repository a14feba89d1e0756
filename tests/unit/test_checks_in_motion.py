"""States in motion are not causes: a handler being installed, a transitioning status
within its window, an agent starting. Past its window, a state in motion is stuck."""

from __future__ import annotations

import shlex

from checks import in_motion
from checks.fakes import (
    HANDLER_DIR,
    HEALTHY_PS,
    FakeClock,
    FakeHost,
    fake_context,
    healthy_host,
    healthy_platform,
    status_json,
)
from checks.in_guest.agent import agent_running
from checks.in_guest.handler import ENABLING, INSTALLING, extension_status, handler_files
from lab.diagnosis.engine import diagnose_context
from lab.platform.timescale import HANDLER_INSTALL_TIMEOUT

FACTS = fake_context().facts  # the default scale, 240: install window 30 s (its floor)
STATE = f"{HANDLER_DIR}/config/HandlerState"
MANIFEST = f"{HANDLER_DIR}/HandlerManifest.json"


def progress(host: FakeHost, state: str, age: float, workers: int = 1) -> None:
    host.on("handler-progress", f"handler-progress|{state}|{age:.0f}|{workers}\n")
    host.file(STATE, state)


def unpacking(age: float = 2) -> FakeHost:
    """The agent wrote NotInstalled and is still unpacking: no manifest, no scripts yet."""
    host = healthy_host()
    progress(host, "NotInstalled", age)
    host.on(f"cat {shlex.quote(MANIFEST)}", "", rc=1)
    host.on("stat -c '%A'", "", rc=1)
    host.file(f"{HANDLER_DIR}/HandlerEnvironment.json", "")
    host.on(f"cat {shlex.quote(f'{HANDLER_DIR}/HandlerEnvironment.json')}", "", rc=1)
    return host


def finish_install(host: FakeHost) -> None:
    """What the agent leaves when install and enable have run."""
    fresh = healthy_host()
    host.responses.clear()
    host.responses.update(fresh.responses)
    progress(host, "Enabled", 0)


# --- the watch itself -----------------------------------------------------------------


def test_a_settled_state_is_judged_at_once(fake_clock: FakeClock) -> None:
    settled = in_motion.watch(lambda: "Enabled", lambda _: None, 30)
    assert settled == in_motion.Settled("Enabled", 0.0, moving=False)
    assert fake_clock.pauses == []


def test_a_state_in_motion_is_watched_until_it_settles(fake_clock: FakeClock) -> None:
    states = iter(["NotInstalled", "Installed", "Enabled"])
    settled = in_motion.watch(lambda: next(states), lambda s: None if s == "Enabled" else 10.0, 60)
    assert settled.value == "Enabled" and not settled.moving
    assert fake_clock.pauses == [1.0, 1.0] and settled.waited == 2.0


def test_a_state_in_motion_past_its_window_is_stuck(fake_clock: FakeClock) -> None:
    # The guest's age grows with time: 28 s old in a 30 s window leaves 2 s of watching.
    settled = in_motion.watch(lambda: 28 + fake_clock.now, lambda age: 30 - age, 60)
    assert settled.moving and settled.waited == 2.0


def test_progress_opens_a_new_window(fake_clock: FakeClock) -> None:
    looks = iter([(25, "NotInstalled"), (29, "NotInstalled"), (1, "Installed"), (0, "Enabled")])

    def remaining(seen: tuple[int, str]) -> float | None:
        age, state = seen
        return None if state == "Enabled" else 30 - age

    settled = in_motion.watch(lambda: next(looks), remaining, 60)
    assert settled.value == (0, "Enabled") and not settled.moving


# --- the handler ----------------------------------------------------------------------


def test_a_handler_being_installed_is_not_broken(fake_clock: FakeClock) -> None:
    host = unpacking()
    fake_clock.on_pause = lambda count: finish_install(host) if count == 3 else None
    result = handler_files(host, FACTS)
    assert result.passed, result.detail
    assert "HandlerState Enabled" in result.detail
    assert "waited 3 s while the agent installed and enabled it" in result.detail


def test_the_diagnosis_names_nothing_while_the_handler_installs(fake_clock: FakeClock) -> None:
    host = unpacking()
    fake_clock.on_pause = lambda count: finish_install(host) if count == 2 else None
    found = diagnose_context(fake_context(host, healthy_platform()))
    assert found.cause_ids == ()


def test_a_handler_stuck_not_installed_past_its_window_is_a_cause(
    fake_clock: FakeClock,
) -> None:
    host = unpacking(age=100)
    result = handler_files(host, FACTS)
    assert not result.passed
    assert fake_clock.pauses == []  # 100 s > the 30 s window: nothing to wait for
    assert "HandlerState NotInstalled" in result.detail
    assert "NotInstalled for 100 s" in result.detail
    assert "15 min on Azure's clock = 30 s in the lab (time scale 240, floor 30 s)" in (
        result.detail
    )
    found = diagnose_context(fake_context(host, healthy_platform()))
    assert found.cause_ids == ("broken-extension",)


def test_a_handler_that_never_settles_is_judged_when_its_window_runs_out(
    fake_clock: FakeClock,
) -> None:
    host = unpacking(age=5)
    fake_clock.on_pause = lambda count: progress(host, "NotInstalled", 5 + fake_clock.now)
    result = handler_files(host, FACTS)
    assert not result.passed
    assert fake_clock.waited == INSTALLING.seconds(240) - 5
    assert "NotInstalled for 30 s" in result.detail


def test_enable_gets_its_own_window(fake_clock: FakeClock) -> None:
    host = healthy_host()
    progress(host, "Installed", 3)

    def enable(count: int) -> None:
        if count == 2:
            progress(host, "Enabled", 0)

    fake_clock.on_pause = enable
    assert handler_files(host, FACTS).passed
    assert ENABLING.seconds(240) == 15.0
    assert fake_clock.pauses == [1.0, 1.0]


def test_a_handler_the_agent_gave_up_on_is_judged_at_once(fake_clock: FakeClock) -> None:
    host = unpacking()
    host.file(
        f"{HANDLER_DIR}/config/HandlerStatus",
        '{"status": "NotReady", "code": -1, "message": "Failed to download artifacts"}',
    )
    result = handler_files(host, FACTS)
    assert not result.passed and fake_clock.pauses == []
    assert "the agent gave up on it" in result.detail


def test_without_the_agents_extension_process_nothing_installs(fake_clock: FakeClock) -> None:
    host = unpacking()
    progress(host, "NotInstalled", 2, workers=0)
    result = handler_files(host, FACTS)
    assert fake_clock.pauses == []
    assert "nothing is installing it" in result.detail


def test_the_install_window_is_azures_900_seconds_scaled() -> None:
    assert HANDLER_INSTALL_TIMEOUT.azure_seconds == 900
    assert INSTALLING.seconds(1) == 900
    assert INSTALLING.seconds(240) == 30.0  # the floor: an install under a storm's load
    assert INSTALLING.seconds(10) == 90.0


# --- the extension's status -----------------------------------------------------------


def _transitioning(age: int) -> FakeHost:
    host = healthy_host()
    host.on("echo $(( $(date +%s)", f"{age}\n")
    host.file(
        f"{HANDLER_DIR}/status/0.status",
        status_json("transitioning", 0, "Snapshot in progress"),
    )
    return host


def test_a_transitioning_status_within_its_window_is_not_a_cause() -> None:
    result = extension_status(_transitioning(10), FACTS)
    assert result.passed
    assert "within the sub-task timeout" in result.detail
    assert "95 min on Azure's clock = 23.75 s in the lab" in result.detail


def test_a_status_transitioning_past_its_window_fails() -> None:
    result = extension_status(_transitioning(40), FACTS)
    assert not result.passed
    assert "still transitioning 40 s after its settings, past the sub-task timeout" in (
        result.detail
    )


# --- the agent ------------------------------------------------------------------------

STARTING_SERVICE = (
    "Result=success\nExecMainStatus=0\nLoadState=loaded\nActiveState=activating\n"
    "SubState=start\nActiveEnterTimestamp=\nInactiveEnterTimestamp=Sat 2026-11-28 00:31:20 UTC\n"
)
RUNNING_SERVICE = (
    "Result=success\nExecMainStatus=0\nLoadState=loaded\nActiveState=active\n"
    "SubState=running\nActiveEnterTimestamp=Sat 2026-11-28 00:31:24 UTC\n"
    "InactiveEnterTimestamp=\n"
)


def _starting_agent() -> FakeHost:
    host = healthy_host().on("systemctl show -p LoadState,ActiveState", STARTING_SERVICE)
    return host.on("ps -eo pid=,etimes=,args=", "      1      60 /sbin/init\n")


def test_an_agent_starting_up_is_not_a_cause(fake_clock: FakeClock) -> None:
    host = _starting_agent()

    def started(count: int) -> None:
        if count == 2:
            host.on("systemctl show -p LoadState,ActiveState", RUNNING_SERVICE)
        if count == 3:
            host.on("ps -eo pid=,etimes=,args=", HEALTHY_PS)

    fake_clock.on_pause = started
    result = agent_running(host, FACTS)
    assert result.passed, result.detail
    assert "watched it start for 3 s" in result.detail
    found = diagnose_context(fake_context(host, healthy_platform()))
    assert "agent-stopped" not in found.cause_ids


def test_an_agent_that_never_finishes_starting_fails_after_its_window(
    fake_clock: FakeClock,
) -> None:
    result = agent_running(_starting_agent(), FACTS)
    assert not result.passed
    assert fake_clock.waited == 20.0
    assert "not settled after 20 s: the agent's start-up may take 10 min" in result.detail


def test_a_stopped_agent_is_judged_at_once(fake_clock: FakeClock) -> None:
    host = healthy_host().on(
        "systemctl show -p LoadState,ActiveState",
        "LoadState=loaded\nActiveState=inactive\nSubState=dead\n",
    )
    host.on("ps -eo pid=,etimes=,args=", "      1      60 /sbin/init\n")
    assert not agent_running(host, FACTS).passed
    assert fake_clock.pauses == []


def test_a_unit_stuck_stopping_longer_than_the_window_is_judged_at_once(
    fake_clock: FakeClock,
) -> None:
    """Memory pressure: the OOM-killed agent's unit hangs in stop-sigterm; it has been
    there for a minute by systemd's own clock, so nothing is waited for."""
    host = healthy_host().on(
        "systemctl show -p LoadState,ActiveState",
        "LoadState=loaded\nActiveState=deactivating\nSubState=stop-sigterm\nResult=signal\n"
        "StateChangeTimestampMonotonic=1000000000\nuptime=1060.5\n",
    )
    host.on("ps -eo pid=,etimes=,args=", "      1      60 /sbin/init\n")
    result = agent_running(host, FACTS)
    assert not result.passed and fake_clock.pauses == []
    assert "deactivating (stop-sigterm)" in result.detail
    assert "not settled after 60 s" in result.detail


def test_a_unit_that_just_began_starting_gets_the_rest_of_its_window(
    fake_clock: FakeClock,
) -> None:
    host = healthy_host()

    def look(_: int = 0) -> None:  # the guest's clock moves on with the check's
        host.on(
            "systemctl show -p LoadState,ActiveState",
            STARTING_SERVICE
            + f"StateChangeTimestampMonotonic=1000000000\nuptime={1005.0 + fake_clock.now}\n",
        )

    look()
    fake_clock.on_pause = look
    host.on("ps -eo pid=,etimes=,args=", "      1      60 /sbin/init\n")
    assert not agent_running(host, FACTS).passed
    assert fake_clock.waited == 15.0  # 20 s window, 5 s of it already spent
