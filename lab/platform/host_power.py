"""The host's view of its VMs: it sees a guest OS halt or reboot, as a hypervisor does.

On Azure, a VM whose OS shuts itself down (``poweroff`` inside the guest) is
``PowerState/stopped``: still allocated, no longer running. A reboot inside the guest is
not a stop: the hypervisor resets the VM and it stays ``running`` throughout. The lab's
VMs are containers, so the host here is the Docker engine, and the guest's own kernel
tells the two apart the way it tells systemd-nspawn: a guest that may call ``reboot(2)``
(``CAP_SYS_BOOT``, which in a PID namespace ends only that namespace) ends its init with
SIGINT for a halt or power-off and SIGHUP for a reboot, so the container exits with
128 + that signal.

:class:`HostWatcher` looks at the lab's guest containers twice per
:data:`~lab.platform.timescale.PLATFORM_POWER_REPORT_PERIOD` and

- reports a halted OS to the fabric (:meth:`HaltReports.report_halt`), once per halt;
  the fabric's power record (:mod:`lab.platform.power_states`) then says ``stopped``
  for every reader: the ARM twin's instance view, ``snaplab status``, the backup service;
- starts a container whose OS rebooted again at once (the VM's reset), reporting nothing.

A VM the platform itself is powering off, starting or restarting is left alone: the
twin's power work and the watcher share one lock per VM (:class:`VmLocks`), so an ARM
operation and a halt report never interleave.

Runs inside the ARM twin's container (the one with the Docker socket) on Debian's
Python: stdlib and ``docker`` only, and nothing from ``lab`` outside
:mod:`lab.platform`. :class:`GuestContainers` is the seam for tests; :class:`DockerGuests`
is the real one.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from lab.platform.guest_cgroups import open_cgroups
from lab.platform.roster import Roster
from lab.platform.timescale import PLATFORM_POWER_REPORT_PERIOD

_log = logging.getLogger("lab.platform.arm")

# Exit codes of a container whose init the kernel ended for reboot(2) in its namespace.
REBOOT_EXIT_CODE = 128 + signal.SIGHUP
HALT_EXIT_CODE = 128 + signal.SIGINT
# Docker's states of a container whose processes are gone.
_ENDED = ("exited", "dead")


class OsEvent(Enum):
    """What the host makes of a guest container's state."""

    UP = "up"  # running, or not yet started, or between states: nothing to report
    HALTED = "halted"  # the OS powered off or halted (or its init died)
    REBOOTED = "rebooted"  # the OS asked for a reboot: the VM resets


@dataclass(frozen=True)
class ContainerState:
    """A guest container as the engine reports it."""

    name: str
    status: str  # Docker's: created, running, restarting, paused, exited, dead, ...
    exit_code: int = 0
    finished_at: str = ""  # when it last ended; tells one halt from the next


def classify(state: ContainerState) -> OsEvent:
    """A reboot is the kernel's SIGHUP exit; any other end of the container is a halt
    (a guest without CAP_SYS_BOOT exits 0 on both, and is taken as halted)."""
    if state.status not in _ENDED:
        return OsEvent.UP
    return OsEvent.REBOOTED if state.exit_code == REBOOT_EXIT_CODE else OsEvent.HALTED


class GuestContainers(Protocol):
    """The Docker engine as the watcher needs it."""

    def statuses(self, names: Sequence[str]) -> dict[str, str]:
        """Docker's status of each named container that exists (one cheap call)."""
        ...

    def inspect(self, name: str) -> ContainerState | None:
        """The container's full state now, or None when it does not exist."""
        ...

    def boot(self, name: str) -> None:
        """Start the container again (the VM's reset after a reboot)."""
        ...


class HaltReports(Protocol):
    """Where the host reports a halted OS: the fabric's control API."""

    def roster(self) -> Roster: ...

    def report_halt(self, vm: str) -> bool:
        """Tell the platform ``vm``'s OS halted; True if it took the report (False when
        its view of the VM is stale). Raises the client's error when unreachable."""
        ...


class VmLocks:
    """One lock per VM, shared by the twin's power work and the watcher."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock(self, vm: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(vm, threading.Lock())

    @contextlib.contextmanager
    def held(self, vm: str) -> Iterator[None]:
        """Hold ``vm``'s lock (waiting for it): a power operation's work."""
        with self._lock(vm):
            yield

    @contextlib.contextmanager
    def try_held(self, vm: str) -> Iterator[bool]:
        """Hold ``vm``'s lock if it is free; yields whether it was taken."""
        lock = self._lock(vm)
        taken = lock.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                lock.release()


def look_period(roster: Roster) -> float:
    """Seconds between two looks: half the platform's report period at the lab's scale."""
    return PLATFORM_POWER_REPORT_PERIOD.lab_seconds(roster.time_scale) / 2


class HostWatcher:
    """Looks at a lab's guests and tells the platform which OS halted; resets rebooted
    ones. :meth:`look` is one pass (tests call it); :meth:`run` loops until stopped."""

    def __init__(
        self,
        fabric: HaltReports,
        containers: GuestContainers,
        locks: VmLocks,
        *,
        period: Callable[[Roster], float] = look_period,
        fabric_errors: tuple[type[Exception], ...] = (Exception,),
    ) -> None:
        self._fabric = fabric
        self._containers = containers
        self._locks = locks
        self._period = period
        self._fabric_errors = fabric_errors
        self._roster: Roster | None = None
        self._handled: set[tuple[str, str]] = set()  # (container, finished_at) done with

    def look(self) -> list[str]:
        """One pass over the lab's guests; returns what it did, one line per VM acted on."""
        roster = self._known_roster()
        if roster is None:
            return []
        by_container = {g.container: g.name for g in roster.guests}
        statuses = self._containers.statuses(list(by_container))
        done = []
        for container, status in statuses.items():
            vm = by_container.get(container)
            if vm is None or status not in _ENDED:
                continue
            with self._locks.try_held(vm) as free:
                if not free:
                    continue  # the platform is powering this VM off, on or over
                line = self._handle(vm, container)
            if line:
                done.append(line)
        return done

    def _handle(self, vm: str, container: str) -> str | None:
        state = self._containers.inspect(container)  # fresh, under the VM's lock
        if state is None:
            return None
        event = classify(state)
        key = (container, state.finished_at)
        if event is OsEvent.UP or key in self._handled:
            return None
        if event is OsEvent.REBOOTED:
            self._containers.boot(container)
            self._handled.add(key)
            _log.info("%s: the guest OS rebooted; the VM was reset and keeps running", vm)
            return f"{vm}: rebooted, reset"
        try:
            taken = self._fabric.report_halt(vm)
        except self._fabric_errors as exc:
            _log.warning("%s: cannot report the halted OS to the fabric: %s", vm, exc)
            return None  # tried again on the next look
        self._handled.add(key)
        if taken:
            _log.info("%s: the guest OS halted (exit %d); reported stopped", vm, state.exit_code)
            return f"{vm}: halted, reported stopped"
        _log.info("%s: the guest OS halted; the platform's view of it is stale", vm)
        return f"{vm}: halted, report dropped (stale view)"

    def _known_roster(self) -> Roster | None:
        if self._roster is None:
            try:
                self._roster = self._fabric.roster()
            except self._fabric_errors as exc:
                _log.debug("no roster yet: %s", exc)
        return self._roster

    def run(self, stop: threading.Event) -> None:
        """Look until ``stop`` is set; an error in one pass never ends the watch."""
        while True:
            try:
                self.look()
            except Exception:
                _log.exception("looking at the guests failed")
            roster = self._roster
            if stop.wait(self._period(roster) if roster is not None else 1.0):
                return

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="host-watch", daemon=True)
        thread.start()
        return thread


class DockerGuests:
    """:class:`GuestContainers` on the Docker engine (needs the engine's socket).

    Uses only the low-level calls Debian's python3-docker 5.0.3 shares with 7.x; the
    client is made on first use, so importing this module needs no engine."""

    def __init__(self, client_factory: Callable[[], Any] | None = None) -> None:
        self._client_factory = client_factory or _docker_from_env
        self._client: Any = None
        self._lock = threading.Lock()

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client.api

    def statuses(self, names: Sequence[str]) -> dict[str, str]:
        if not names:
            return {}
        found = self._api().containers(all=True, filters={"name": list(names)})
        wanted = set(names)
        statuses = {}
        for entry in found:
            for raw in entry.get("Names") or []:
                name = str(raw).lstrip("/")
                if name in wanted:
                    statuses[name] = str(entry.get("State", ""))
        return statuses

    def inspect(self, name: str) -> ContainerState | None:
        import docker.errors  # only the twin's container has docker

        try:
            attrs = self._api().inspect_container(name)
        except docker.errors.NotFound:
            return None
        state = attrs.get("State") or {}
        return ContainerState(
            name=name,
            status=str(state.get("Status", "")),
            exit_code=int(state.get("ExitCode") or 0),
            finished_at=str(state.get("FinishedAt", "")),
        )

    def boot(self, name: str) -> None:
        self._api().start(name)
        open_cgroups(self._api(), name)  # the guest's systemd starts after this


def _docker_from_env() -> Any:
    import docker  # only the twin's container has it; the fabric's services do not

    return docker.from_env()
