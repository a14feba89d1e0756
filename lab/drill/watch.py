"""``snaplab drill watch``: the live board, and the checker behind ``check-my-solution``.

Every few seconds it looks in each trainee's guest for a check request
(:mod:`lab.drill.guest_check`), runs the check for it (one at a time per trainee, several
trainees at once) and writes the answer back into the guest. It stops when the drill
ends or the trainer presses Ctrl-C.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import docker

from lab.drill import engines as drill_engines
from lab.drill import guest_check
from lab.drill.check import CheckResult, run_check
from lab.drill.state import DrillNotFound, load
from lab.errors import SnaplabError

LOOK_SECONDS = 3.0


def _serve_one(
    on_engine: docker.DockerClient,
    name: str,
    trainee: str,
    lab: str,
    vm: str,
    report: Callable[[str], None],
    busy: set[str],
    lock: threading.Lock,
) -> None:
    try:
        result: CheckResult | None = run_check(on_engine, name, trainee)
        line = result.line() if result else ""
    except SnaplabError as exc:
        line = f"{trainee}: the check could not run ({exc.__class__.__name__}); ask your trainer"
        report(f"{trainee}: check failed to run: {exc}")
    else:
        report(f"{line} (asked from the VM)")
    guest_check.answer(on_engine, lab, vm, line)
    with lock:
        busy.discard(trainee)


def serve(
    client: docker.DockerClient,
    name: str,
    report: Callable[[str], None],
    stop: threading.Event,
    look_seconds: float = LOOK_SECONDS,
) -> None:
    """Answer the guests' check requests until ``stop`` is set or the drill ends."""
    busy: set[str] = set()
    lock = threading.Lock()
    while not stop.is_set():
        try:
            state = load(name)
        except DrillNotFound:
            return
        if state.ended_at is not None:
            return
        for trainee in state.trainees:
            with lock:
                if trainee.id in busy:
                    continue
            on_engine = drill_engines.client_for(client, trainee)
            if not guest_check.take_request(on_engine, trainee.lab, trainee.vm):
                continue
            with lock:
                busy.add(trainee.id)
            report(f"{trainee.id}: check asked from the VM")
            threading.Thread(
                target=_serve_one,
                args=(
                    on_engine,
                    name,
                    trainee.id,
                    trainee.lab,
                    trainee.vm,
                    report,
                    busy,
                    lock,
                ),
                name=f"snaplab-check-{trainee.id}",
                daemon=True,
            ).start()
        stop.wait(look_seconds)
