"""``snaplab run --engine ...``: each item's lab on one of several Docker engines.

The runner asks its drivers for a lab by name; :class:`PlacedDrivers` puts each new lab
on the engine with the fewest of the run's labs at that moment (items finish at
different times, so a plain rotation would pile labs onto one engine) and sends every
later call for that lab (faults, backups, the diagnosis, the runbook, its removal) to
that engine's :class:`DockerDrivers`. Variants that drive Docker themselves (the drill,
the round trip) ask :func:`lab_drivers` for the engine of their lab.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import docker

from lab.platform.roster import Roster
from lab.provision import engines
from lab.provision.engines import Engine
from lab.runbook import RunbookResult
from lab.runner.drivers import Diagnosis, DockerDrivers, Drivers, Report
from lab.scenario import Scenario
from lab.scenario_schema import VmDecl


class PlacedDrivers:
    """:class:`Drivers` over several engines' :class:`DockerDrivers`, one lab each."""

    def __init__(self, engines: Sequence[DockerDrivers]) -> None:
        if not engines:
            raise ValueError("PlacedDrivers needs at least one engine")
        self.engines = list(engines)
        self._labs: dict[str, DockerDrivers] = {}
        self._lock = threading.Lock()

    def on(self, lab: str) -> DockerDrivers:
        """The engine ``lab`` is on; a new lab goes to the least busy engine."""
        with self._lock:
            placed = self._labs.get(lab)
            if placed is None:
                counts = {id(d): 0 for d in self.engines}
                for other in self._labs.values():
                    counts[id(other)] += 1
                placed = min(self.engines, key=lambda d: counts[id(d)])
                self._labs[lab] = placed
            return placed

    def placement(self) -> dict[str, DockerDrivers]:
        with self._lock:
            return dict(self._labs)

    def prepare(self, vms: Sequence[VmDecl]) -> None:
        for engine in self.engines:
            engine.prepare(vms)

    def up(self, lab: str, vms: Sequence[VmDecl], time_scale: float) -> Roster:
        return self.on(lab).up(lab, vms, time_scale)

    def down(self, lab: str) -> None:
        with self._lock:
            placed = self._labs.pop(lab, None)
        # A lab this process did not place may be on any of the engines.
        for engine in [placed] if placed is not None else self.engines:
            engine.down(lab)

    def inject(self, roster: Roster, vm: str, fault: str, params: Mapping[str, Any]) -> None:
        self.on(roster.lab).inject(roster, vm, fault, params)

    def backup(
        self, roster: Roster, vm: str, deadline_seconds: float, cancel: threading.Event
    ) -> dict[str, Any]:
        return self.on(roster.lab).backup(roster, vm, deadline_seconds, cancel)

    def scheduled_backup(
        self,
        roster: Roster,
        vm: str,
        policy: str,
        seen: Collection[str],
        deadline_seconds: float,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        on = self.on(roster.lab)
        return on.scheduled_backup(roster, vm, policy, seen, deadline_seconds, cancel)

    def diagnose(self, roster: Roster, vm: str) -> Diagnosis:
        return self.on(roster.lab).diagnose(roster, vm)

    def run_runbook(
        self, roster: Roster, scenario: Scenario, cancel: threading.Event
    ) -> RunbookResult:
        return self.on(roster.lab).run_runbook(roster, scenario, cancel)

    def guest_logs(self, roster: Roster, vm: str) -> dict[str, str]:
        return self.on(roster.lab).guest_logs(roster, vm)

    def versions(self) -> dict[str, str]:
        return self.engines[0].versions()


def lab_drivers(drivers: Drivers, lab: str) -> DockerDrivers | None:
    """The real drivers of the engine ``lab`` is (or will be) on; None for fakes."""
    if isinstance(drivers, PlacedDrivers):
        return drivers.on(lab)
    return drivers if isinstance(drivers, DockerDrivers) else None


def engine_drivers(
    default: docker.DockerClient, engine: Engine, report: Report = lambda _: None
) -> DockerDrivers:
    """One engine's drivers: the usual engine's, or those of another engine of this
    machine (refused if it is not), whose images are built on the usual one and copied."""
    if engine.is_default:
        return DockerDrivers(default, report)
    client = engines.connect(engine)
    engines.require_this_machine(engine, client)
    return DockerDrivers(client, report, image_source=default)
