"""Run many scenarios, each in its own lab, ``--parallel`` at a time, into one journal.

The first Ctrl-C (or SIGTERM, SIGHUP: :mod:`lab.signals`) stops them at the next phase
boundary and tears every lab down, a second one removes the labs at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from lab import signals
from lab.errors import BadInput
from lab.journal import Journal, ScenarioRecord, now, run_input
from lab.platform.timescale import time_scale
from lab.provision.labels import LAB_NAME_PATTERN
from lab.runner.drivers import Drivers
from lab.runner.engine import Observer, new_record, run_scenario
from lab.runner.phases import Keep, RunContext
from lab.scenario import Scenario

DEFAULT_LAB_PREFIX = "run"
LAB_PREFIX_MAX = 10
# Creating one object of a lab takes well under a second; a worker whose lab was removed
# under it fails at its next step (see _remove_now).
SWEEP_AGAIN_SECONDS = 3.0


def lab_name(prefix: str, scenario_id: str) -> str:
    """``<prefix>-<id>``, shortened with a stable hash when it exceeds the lab-name rule."""
    name = f"{prefix}-{scenario_id}"
    if LAB_NAME_PATTERN.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:5]
    head = name[: 20 - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def check_lab_prefix(prefix: str) -> str:
    if not LAB_NAME_PATTERN.match(prefix) or len(prefix) > LAB_PREFIX_MAX:
        raise BadInput(
            f"--lab-prefix {prefix!r}: lowercase letters, digits and '-', starting with a "
            f"letter, at most {LAB_PREFIX_MAX} characters"
        )
    return prefix


@dataclass(frozen=True)
class RunOptions:
    keep: Keep = "never"
    parallel: int = 1
    lab_prefix: str = DEFAULT_LAB_PREFIX


class _LiveLabs:
    """Labs started and not yet removed: what a second Ctrl-C must remove at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labs: set[str] = set()

    def add(self, lab: str) -> None:
        with self._lock:
            self._labs.add(lab)

    def discard(self, lab: str) -> None:
        with self._lock:
            self._labs.discard(lab)

    def snapshot(self) -> list[str]:
        with self._lock:
            return sorted(self._labs)


def run_catalog(
    scenarios: Sequence[Scenario],
    drivers: Drivers,
    options: RunOptions = RunOptions(),
    observe: Observer = lambda record, phase: None,
    cancel: threading.Event | None = None,
) -> Journal:
    """Run scenarios, ``options.parallel`` at a time, and return the run's journal.

    Ctrl-C (in the calling thread) stops every scenario at its next phase boundary and
    tears its lab down; the journal then says ``interrupted``. A second Ctrl-C removes
    every lab still up and lets the interrupt through.
    """
    stop = cancel or threading.Event()
    names = [lab_name(options.lab_prefix, s.id) for s in scenarios]
    journal = Journal(
        input=run_input(
            [s.id for s in scenarios],
            {"keep": options.keep, "parallel": options.parallel, "lab_prefix": options.lab_prefix},
            time_scale(),
            **drivers.versions(),
        ),
        scenarios=[new_record(s, n) for s, n in zip(scenarios, names, strict=True)],
    )
    began = time.monotonic()
    drivers.prepare(sorted({vm.agent for s in scenarios for vm in s.spec.vms}))
    live = _LiveLabs()
    work: queue.SimpleQueue[tuple[Scenario, ScenarioRecord]] = queue.SimpleQueue()
    for item in zip(scenarios, journal.scenarios, strict=True):
        work.put(item)

    count = max(1, min(options.parallel, len(scenarios)))
    remaining = [count]
    remaining_lock = threading.Lock()
    finished = threading.Event()

    def worker() -> None:
        try:
            _work()
        finally:
            with remaining_lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    finished.set()

    def _work() -> None:
        while True:
            try:
                scenario, record = work.get_nowait()
            except queue.Empty:
                return
            if stop.is_set():
                _not_run(record)
                observe(record, None)
                continue
            ctx = RunContext(
                scenario=scenario,
                lab=record.lab,
                drivers=drivers,
                record=record,
                keep=options.keep,
                cancel=stop,
                on_lab_started=live.add,
                on_lab_removed=live.discard,
            )
            run_scenario(ctx, observe=observe)

    for i in range(count):
        threading.Thread(target=worker, name=f"snaplab-run-{i}", daemon=True).start()
    try:
        _wait(finished)
    except KeyboardInterrupt:
        stop.set()
        try:
            _wait(finished)
        except KeyboardInterrupt:
            with signals.shielded("removing the run's labs"):
                _remove_now(live, drivers, finished)
            raise
    journal.finished_at = now()
    journal.seconds = time.monotonic() - began
    return journal


def _remove_now(live: _LiveLabs, drivers: Drivers, finished: threading.Event) -> None:
    """The second interrupt: remove every lab still up, without waiting for its phase.

    A worker still provisioning may create objects (a container, the lab's firewall
    rules) after its lab was removed; it fails soon after, since its network is gone.
    So wait briefly for the workers and remove the labs once more.
    """
    for attempt in range(2):
        if attempt:
            finished.wait(SWEEP_AGAIN_SECONDS)
        for name in live.snapshot():
            # Removing the other labs matters more than one that will not go.
            with contextlib.suppress(Exception):
                drivers.down(name)


def _wait(finished: threading.Event) -> None:
    """Wait in short slices, so Ctrl-C reaches this (the main) thread promptly.

    Not ``Thread.join``: on Python 3.11 a KeyboardInterrupt inside ``join`` can mark a
    still-running thread as stopped, and the run would end while a lab is still up.
    """
    while not finished.wait(0.2):
        pass


def _not_run(record: ScenarioRecord) -> None:
    record.status = "interrupted"
    for entry in record.phases:
        entry.status, entry.output = "skipped", "skipped: the run was interrupted"
