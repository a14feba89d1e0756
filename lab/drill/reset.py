"""``snaplab drill reset TRAINEE``: a fresh lab, the same scenario, the same way in.

The trainee's lab is removed and brought up again under the same name, broken by the
same scenario; its first backup gives the symptom again, and access is granted anew
(:mod:`lab.drill.access` keeps the trainee's port when it is free). The reset is
recorded; attempts and hints already counted stay counted. A reset that fails removes
that trainee's lab (the others keep running) and says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import docker

from lab import signals
from lab.drill import engines as drill_engines
from lab.drill.plan import Seat
from lab.drill.start import DrillFailed, bring_up
from lab.drill.state import Trainee, load, locked
from lab.errors import BadInput, SnaplabError
from lab.runner.drivers import DockerDrivers, Drivers
from lab.scenario import load_scenario


def reset_trainee(
    client: docker.DockerClient,
    name: str,
    trainee_id: str,
    report: Callable[[str], None],
    drivers: Drivers | None = None,
) -> Trainee:
    state = load(name)
    if state.ended_at is not None:
        raise BadInput(f"drill {name!r} has ended")
    old = state.trainee(trainee_id)
    scenario = load_scenario(old.scenario)
    client = drill_engines.client_for(client, old)
    drivers = drivers or DockerDrivers(client, report)
    seat = Seat(old.id, old.lab, old.scenario)
    report(f"removing lab {old.lab}")
    drivers.down(old.lab)
    try:
        drivers.prepare(scenario.spec.vms)
        fresh = bring_up(
            client, drivers, name, seat, scenario, report, threading.Event(), old.engine
        )
    except BaseException as exc:
        with signals.shielded("removing the trainee's lab"):
            drivers.down(old.lab)
        if isinstance(exc, SnaplabError) and not isinstance(exc, DrillFailed):
            raise DrillFailed(f"reset of {trainee_id}: {exc} (lab {old.lab} removed)") from exc
        raise
    with locked(name) as saved:
        trainee = saved.trainee(trainee_id)
        trainee.symptom = fresh.symptom
        trainee.symptom_job = fresh.symptom_job
        trainee.access = fresh.access
        trainee.record("reset", lab=trainee.lab)
        return trainee.model_copy(deep=True)
