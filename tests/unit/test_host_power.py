"""The host's watch over its guests: a halted OS becomes PowerState/stopped for every
reader, a rebooted one is reset and stays running, a stale view keeps running.

Fakes stand in for Docker; the fabric is the real one behind its real control API on
127.0.0.1, read by the real HTTP client, the ARM twin and the backup service's channel.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client

from lab.platform.arm.app import ArmTwin
from lab.platform.arm.fabric import FabricError, HttpFabricClient
from lab.platform.backup.agent import FabricAgentChannel
from lab.platform.control import ControlApp
from lab.platform.guest_state import Fabric
from lab.platform.host_power import (
    HALT_EXIT_CODE,
    REBOOT_EXIT_CODE,
    ContainerState,
    HostWatcher,
    OsEvent,
    VmLocks,
    classify,
    look_period,
)
from lab.platform.roster import Roster
from lab.platform.timescale import PLATFORM_POWER_REPORT_PERIOD
from tests.unit.fabric_samples import make_fabric, make_roster

VM1 = "snaplab-unit-vm1"
VM2 = "snaplab-unit-vm2"


@dataclass
class FakeGuests:
    """Guest containers as data; ``end`` plays the guest's kernel ending its init."""

    states: dict[str, ContainerState] = field(
        default_factory=lambda: {n: ContainerState(n, "running") for n in (VM1, VM2)}
    )
    booted: list[str] = field(default_factory=list)
    ends: int = 0

    def end(self, name: str, exit_code: int) -> None:
        self.ends += 1
        self.states[name] = ContainerState(name, "exited", exit_code, f"t{self.ends}")

    def statuses(self, names: Sequence[str]) -> dict[str, str]:
        return {n: self.states[n].status for n in names if n in self.states}

    def inspect(self, name: str) -> ContainerState | None:
        return self.states.get(name)

    def boot(self, name: str) -> None:
        self.booted.append(name)
        self.states[name] = ContainerState(name, "running", 0, self.states[name].finished_at)


@dataclass
class FakeReports:
    roster_: Roster = field(default_factory=make_roster)
    halts: list[str] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)
    down: bool = False

    def roster(self) -> Roster:
        if self.down:
            raise FabricError("connection refused")
        return self.roster_

    def report_halt(self, vm: str) -> bool:
        if self.down:
            raise FabricError("connection refused")
        self.halts.append(vm)
        return vm not in self.stale


def watcher(reports: FakeReports, guests: FakeGuests, locks: VmLocks | None = None) -> HostWatcher:
    return HostWatcher(reports, guests, locks or VmLocks(), fabric_errors=(FabricError,))


# --------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("status", "code", "event"),
    [
        ("running", 0, OsEvent.UP),
        ("created", 0, OsEvent.UP),  # not started yet: nothing to say
        ("restarting", 0, OsEvent.UP),
        ("exited", HALT_EXIT_CODE, OsEvent.HALTED),  # poweroff / halt: SIGINT
        ("exited", REBOOT_EXIT_CODE, OsEvent.REBOOTED),  # reboot: SIGHUP
        ("exited", 0, OsEvent.HALTED),  # a guest without CAP_SYS_BOOT
        ("exited", 137, OsEvent.HALTED),  # its init killed
        ("dead", 1, OsEvent.HALTED),
    ],
)
def test_classify(status: str, code: int, event: OsEvent) -> None:
    assert classify(ContainerState("c", status, code)) is event


def test_the_kernels_exit_codes() -> None:
    assert (HALT_EXIT_CODE, REBOOT_EXIT_CODE) == (130, 129)


def test_two_looks_per_report_period() -> None:
    roster = make_roster()
    for scale in (1.0, 60.0, 240.0):
        looks = look_period(replace(roster, time_scale=scale))
        assert looks == PLATFORM_POWER_REPORT_PERIOD.lab_seconds(scale) / 2
    assert PLATFORM_POWER_REPORT_PERIOD.lab_seconds(1.0) == 60.0
    assert PLATFORM_POWER_REPORT_PERIOD.lab_seconds(240.0) == 1.0  # the floor


# --------------------------------------------------------------------------- the watcher


def test_a_halted_os_is_reported_once() -> None:
    reports, guests = FakeReports(), FakeGuests()
    watch = watcher(reports, guests)
    assert watch.look() == []
    guests.end(VM1, HALT_EXIT_CODE)
    assert watch.look() == ["vm1: halted, reported stopped"]
    assert watch.look() == []
    assert reports.halts == ["vm1"] and guests.booted == []


def test_a_rebooted_os_is_reset_and_never_reported() -> None:
    reports, guests = FakeReports(), FakeGuests()
    watch = watcher(reports, guests)
    guests.end(VM2, REBOOT_EXIT_CODE)
    assert watch.look() == ["vm2: rebooted, reset"]
    assert guests.states[VM2].status == "running" and guests.booted == [VM2]
    assert watch.look() == [] and reports.halts == []


def test_each_halt_is_reported_after_the_vm_started_again() -> None:
    reports, guests = FakeReports(), FakeGuests()
    watch = watcher(reports, guests)
    guests.end(VM1, HALT_EXIT_CODE)
    watch.look()
    guests.states[VM1] = ContainerState(VM1, "running")  # ARM start
    watch.look()
    guests.end(VM1, HALT_EXIT_CODE)
    watch.look()
    assert reports.halts == ["vm1", "vm1"]


def test_a_vm_under_a_platform_power_operation_is_left_alone() -> None:
    reports, guests, locks = FakeReports(), FakeGuests(), VmLocks()
    watch = watcher(reports, guests, locks)
    guests.end(VM1, HALT_EXIT_CODE)  # the twin's docker stop
    with locks.held("vm1"):
        assert watch.look() == []
    assert reports.halts == []


def test_a_report_the_fabric_missed_is_sent_again() -> None:
    reports, guests = FakeReports(), FakeGuests()
    watch = watcher(reports, guests)
    guests.end(VM1, HALT_EXIT_CODE)
    watch._roster = reports.roster()  # known from before the fabric went away
    reports.down = True
    assert watch.look() == []
    reports.down = False
    assert watch.look() == ["vm1: halted, reported stopped"]


def test_no_roster_yet_means_no_look() -> None:
    reports, guests = FakeReports(down=True), FakeGuests()
    guests.end(VM1, HALT_EXIT_CODE)
    watch = watcher(reports, guests)
    assert watch.look() == []
    reports.down = False
    assert watch.look() == ["vm1: halted, reported stopped"]


def test_a_dropped_report_is_not_repeated() -> None:
    reports, guests = FakeReports(stale={"vm1"}), FakeGuests()
    watch = watcher(reports, guests)
    guests.end(VM1, HALT_EXIT_CODE)
    assert watch.look() == ["vm1: halted, report dropped (stale view)"]
    assert watch.look() == []
    assert reports.halts == ["vm1"]


def test_run_looks_until_stopped() -> None:
    reports, guests = FakeReports(), FakeGuests()
    guests.end(VM1, HALT_EXIT_CODE)
    watch = HostWatcher(
        reports, guests, VmLocks(), period=lambda _: 0.01, fabric_errors=(FabricError,)
    )
    stop = threading.Event()
    thread = watch.start(stop)
    try:
        deadline = time.monotonic() + 2
        while not reports.halts and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=2)
    assert reports.halts == ["vm1"] and not thread.is_alive()


# --------------------------------------------------------------------------- one record


@pytest.fixture
def served_fabric() -> Iterator[tuple[Fabric, str]]:
    """The real fabric behind its real control API on 127.0.0.1."""
    fabric, _ = make_fabric()
    server = make_server("127.0.0.1", 0, ControlApp(fabric), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fabric, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


TOKEN = "unit-token"
VIEW = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/snaplab/providers/"
    "Microsoft.Compute/virtualMachines/vm1/instanceView?api-version=2024-07-01"
)


def _power_code(twin: ArmTwin) -> str:
    response = Client(twin).get(VIEW, headers={"Authorization": f"Bearer {TOKEN}"})
    view = json.loads(response.get_data(as_text=True))
    return str(next(s["code"] for s in view["statuses"] if s["code"].startswith("PowerState/")))


class NoPower:
    def act(self, container: str, action: object) -> None:
        raise AssertionError("no power operation in this test")


def test_one_record_for_the_twin_the_backup_and_the_cli(served_fabric: tuple[Fabric, str]) -> None:
    fabric, url = served_fabric
    client = HttpFabricClient(url)
    twin = ArmTwin(client, NoPower(), TOKEN)
    guests = FakeGuests()
    watch = HostWatcher(client, guests, twin.power_locks, fabric_errors=(FabricError,))
    channel = FabricAgentChannel(fabric)

    watch.look()
    assert _power_code(twin) == "PowerState/running"
    assert channel.power_state("vm1") == "running"

    guests.end(VM1, HALT_EXIT_CODE)  # `systemctl poweroff` in vm1
    assert watch.look() == ["vm1: halted, reported stopped"]
    assert _power_code(twin) == "PowerState/stopped"
    assert channel.power_state("vm1") == "stopped"  # the backup goes offline
    assert client.vm("vm1").power_state == "stopped"  # type: ignore[union-attr]


def test_the_stale_anomaly_keeps_running_everywhere(served_fabric: tuple[Fabric, str]) -> None:
    fabric, url = served_fabric
    client = HttpFabricClient(url)
    twin = ArmTwin(client, NoPower(), TOKEN)
    guests = FakeGuests()
    watch = HostWatcher(client, guests, twin.power_locks, fabric_errors=(FabricError,))
    fabric.power.set_stale("vm1", True)  # what the power-state-stale fault asks

    guests.end(VM1, HALT_EXIT_CODE)
    assert watch.look() == ["vm1: halted, report dropped (stale view)"]
    assert _power_code(twin) == "PowerState/running"
    assert FabricAgentChannel(fabric).power_state("vm1") == "running"


def test_a_reboot_never_shows_stopped(served_fabric: tuple[Fabric, str]) -> None:
    _, url = served_fabric
    client = HttpFabricClient(url)
    twin = ArmTwin(client, NoPower(), TOKEN)
    guests = FakeGuests()
    watch = HostWatcher(client, guests, twin.power_locks, fabric_errors=(FabricError,))
    guests.end(VM1, REBOOT_EXIT_CODE)
    watch.look()
    assert _power_code(twin) == "PowerState/running"
    assert guests.booted == [VM1]
