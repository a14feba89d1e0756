"""``snaplab drill start``: one broken lab per trainee, in parallel, and the drill's state.

Each trainee's lab goes through the runner's set-up phases (:func:`lab.runner.prepare_lab`:
provision, warm-up, inject), then its first backup runs for real: its error code and
message are the symptom the trainee is given, as a customer would read it in the portal
(never the job's detail, which names the cause). Trainee access comes last
(:mod:`lab.drill.access`). Any failure, or Ctrl-C, removes every lab of the drill and its
state: a drill starts whole or not at all.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

import docker

from lab import signals
from lab.drill import access_hook, capacity, guest_check
from lab.drill.plan import Seat
from lab.drill.roster import write_rosters
from lab.drill.state import (
    DrillState,
    Symptom,
    Trainee,
    create,
    drill_dir,
    locked,
    now_iso,
)
from lab.errors import BadInput, SnaplabError
from lab.platform.roster import Roster
from lab.platform.timescale import DEFAULT_TIME_SCALE, time_scale
from lab.provision import engines
from lab.provision import lab as labs
from lab.provision.engines import Engine
from lab.runner.drill import prepare_lab
from lab.runner.drivers import Drivers
from lab.runner.phases import outcome
from lab.runner.placement import engine_drivers
from lab.scenario import Scenario


class DrillFailed(SnaplabError):
    """A drill could not be started (or a trainee's lab reset); its labs were removed."""


class Progress(Protocol):
    """Where ``drill start`` reports each trainee's phase (the CLI's live table)."""

    def phase(self, trainee: str, text: str) -> None: ...

    def done(self, trainee: str, text: str) -> None: ...


@dataclass(frozen=True)
class StartRequest:
    name: str
    seats: Sequence[Seat]
    scenarios: dict[str, Scenario]
    time_limit_s: int | None
    seed: int | None
    # Where the labs go, round-robin by seat (:func:`lab.provision.engines.place`).
    engines: Sequence[Engine] = (engines.DEFAULT,)


@dataclass(frozen=True)
class Placed:
    """One engine of the drill: its client and the drivers that build labs on it."""

    engine: Engine
    client: docker.DockerClient
    drivers: Drivers


def symptom_limit(scenario: Scenario) -> float:
    """How long the symptom's backup may take (the runner's backup limit, same stretch)."""
    return scenario.spec.limits.backup_seconds * max(1.0, DEFAULT_TIME_SCALE / time_scale())


def first_symptom(
    drivers: Drivers, roster: Roster, scenario: Scenario, cancel: threading.Event
) -> tuple[Symptom, dict[str, Any]]:
    """Run the VM's first backup for real; its failure is what the trainee is told.

    Returns the symptom and the job's kind (id, trigger, policy): a schedule storm's
    failing job is the scheduled one already running, which the backup follows.
    """
    job = drivers.backup(roster, scenario.primary_vm, symptom_limit(scenario), cancel)
    if job.get("status") != "Failed" or not job.get("error_code"):
        state = outcome(job) if "status" in job else "never ran"
        raise DrillFailed(f"the lab's first backup should fail, but it {state}")
    symptom = Symptom(error_code=str(job["error_code"]), message=str(job.get("error_message", "")))
    kind = {k: job[k] for k in ("job_id", "trigger", "policy") if job.get(k) is not None}
    return symptom, kind


def bring_up(
    client: docker.DockerClient,
    drivers: Drivers,
    drill: str,
    seat: Seat,
    scenario: Scenario,
    report: Callable[[str], None],
    cancel: threading.Event,
    engine: str = "",
) -> Trainee:
    """One trainee's lab (on the engine recorded as ``engine``), broken, its symptom
    read and access granted."""
    if cancel.is_set():
        raise DrillFailed("cancelled")
    roster = prepare_lab(drivers, scenario, seat.lab, report)
    if cancel.is_set():
        raise DrillFailed("cancelled")
    report("running the first backup (the symptom)")
    symptom, job = first_symptom(drivers, roster, scenario, cancel)
    trainee = Trainee(
        id=seat.trainee,
        lab=seat.lab,
        vm=scenario.primary_vm,
        scenario=scenario.id,
        symptom=symptom,
        symptom_job=job,
        engine=engine,
    )
    report("setting up trainee access")
    access = access_hook.grant(client, drill, trainee, roster)
    if access is not None:
        trainee.access = access
    guest_check.install(client, seat.lab, trainee.vm)
    return trainee


def start_drill(
    client: docker.DockerClient,
    request: StartRequest,
    progress: Progress,
    drivers: Drivers | None = None,
) -> DrillState:
    """Bring the whole drill up, or nothing of it; returns its saved state."""
    placed = _engines(client, request.engines, drivers)
    existing = {lab for p in placed.values() for lab in labs.lab_names(p.client)}
    taken = [seat.lab for seat in request.seats if seat.lab in existing]
    if taken:
        raise BadInput(f"--name {request.name!r}: lab {taken[0]} already exists")
    seat_engine = engines.place([s.trainee for s in request.seats], request.engines)
    engines.remember(request.engines)
    state = DrillState(
        name=request.name,
        time_limit_s=request.time_limit_s,
        seed=request.seed,
        trainees=[
            Trainee(
                id=s.trainee,
                lab=s.lab,
                vm=request.scenarios[s.scenario].primary_vm,
                scenario=s.scenario,
                engine=seat_engine[s.trainee].url,
            )
            for s in request.seats
        ],
    )
    create(state)
    seat_on = {s.trainee: placed[seat_engine[s.trainee].url] for s in request.seats}
    try:
        for engine_placed in placed.values():
            seats_here = [s for s in request.seats if seat_on[s.trainee] is engine_placed]
            vms = [vm for s in seats_here for vm in request.scenarios[s.scenario].spec.vms]
            if vms:
                engine_placed.drivers.prepare(vms)
        trainees = _bring_up_all(seat_on, request, progress)
    except BaseException as exc:
        with signals.shielded("removing the drill's labs"):
            for engine_placed in placed.values():
                labs_here = [s.lab for s in request.seats if seat_on[s.trainee] is engine_placed]
                remove_drill(engine_placed.drivers, request.name, labs_here)
        if isinstance(exc, DrillFailed | KeyboardInterrupt):
            raise
        if isinstance(exc, SnaplabError):
            raise DrillFailed(f"drill {request.name}: {exc} (every lab removed)") from exc
        raise
    with locked(request.name) as saved:
        saved.started_at = now_iso()
        saved.trainees = trainees
        for trainee in saved.trainees:
            trainee.record("started", at=saved.started_at, lab=trainee.lab)
        final = saved.model_copy(deep=True)
    write_rosters(final)
    return final


def _engines(
    default: docker.DockerClient, wanted: Sequence[Engine], drivers: Drivers | None
) -> dict[str, Placed]:
    """A client and drivers per engine, each refused unless it is on this machine; labs
    on another engine get their images from the first one (built there once)."""
    placed: dict[str, Placed] = {}
    for engine in wanted:
        if engine.is_default and drivers is not None:
            placed[engine.url] = Placed(engine, default, drivers)
            continue
        on = engine_drivers(default, engine)
        placed[engine.url] = Placed(engine, on.client, on)
    return placed


def _bring_up_all(
    seat_on: dict[str, Placed], request: StartRequest, progress: Progress
) -> list[Trainee]:
    cancel = threading.Event()
    workers = capacity.start_workers(len(request.seats))
    results: dict[str, Trainee] = {}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snaplab-drill")
    futures: dict[Future[Trainee], Seat] = {}
    try:
        for seat in request.seats:
            progress.phase(seat.trainee, "waiting for a free worker")
            on = seat_on[seat.trainee]
            futures[pool.submit(_one, on, request, seat, progress, cancel)] = seat
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for future in done:
                seat = futures[future]
                error = future.exception()
                if error is not None:
                    cancel.set()
                    progress.done(seat.trainee, "failed")
                    detail = str(error) if isinstance(error, SnaplabError) else repr(error)
                    raise DrillFailed(
                        f"drill {request.name}: {seat.trainee} ({seat.lab}): {detail} "
                        "(every lab removed)"
                    ) from error
                results[seat.trainee] = future.result()
                progress.done(seat.trainee, "ready")
    except BaseException:
        cancel.set()
        pool.shutdown(wait=False, cancel_futures=True)
        # Workers inside a phase finish it; their labs are removed after they stop.
        _wait_quietly(list(futures))
        raise
    pool.shutdown(wait=True)
    return [results[seat.trainee] for seat in request.seats]


def _one(
    on: Placed,
    request: StartRequest,
    seat: Seat,
    progress: Progress,
    cancel: threading.Event,
) -> Trainee:
    def report(text: str) -> None:
        progress.phase(seat.trainee, text)

    scenario = request.scenarios[seat.scenario]
    return bring_up(
        on.client, on.drivers, request.name, seat, scenario, report, cancel, on.engine.url
    )


def _wait_quietly(futures: list[Future[Any]], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    for future in futures:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            future.exception(timeout=remaining)
        except Exception:  # cancelled, or still running at the deadline (a second Ctrl-C
            continue  # is not caught here: it goes on to remove the labs at once)


def remove_drill(drivers: Drivers, name: str, lab_names: Sequence[str]) -> None:
    """Every lab of the drill and its state folder (keys, env files, rosters)."""
    for lab in lab_names:
        drivers.down(lab)
    shutil.rmtree(drill_dir(name), ignore_errors=True)
