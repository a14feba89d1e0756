"""Run many items (a scenario and a variant), each in its own lab, ``--parallel`` at a
time on one thread pool, into one journal; images are prepared once for all of them.

The first Ctrl-C (or SIGTERM, SIGHUP: :mod:`lab.signals`) stops them at the next phase
boundary and tears every lab down, a second one removes the labs at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
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
from lab.runner.variants import CATALOG, RunItem
from lab.scenario import Scenario

DEFAULT_LAB_PREFIX = "run"
LAB_PREFIX_MAX = 10
# Creating one object of a lab takes well under a second; a worker whose lab was removed
# under it fails at its next step (see _remove_now).
SWEEP_AGAIN_SECONDS = 3.0


def lab_name(prefix: str, item_id: str) -> str:
    """``<prefix>-<id>``, shortened with a stable hash when it breaks the lab-name rule.

    A variant's item id (``agent-stopped@scale=60``) always breaks it (``@``, ``=`` and
    ``.`` are not allowed): its lab is the readable start of the name and the hash of the
    whole, so two variants of one scenario never share a lab.
    """
    name = f"{prefix}-{item_id}"
    if LAB_NAME_PATTERN.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:5]
    slug = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    head = slug[: 20 - len(digest) - 1].rstrip("-")
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


def as_item(entry: RunItem | Scenario) -> RunItem:
    """A scenario given as such is its ``catalog`` variant at the caller's time scale."""
    if isinstance(entry, RunItem):
        return entry
    return RunItem(entry, CATALOG, time_scale())


def run_catalog(
    entries: Sequence[RunItem | Scenario],
    drivers: Drivers,
    options: RunOptions = RunOptions(),
    observe: Observer = lambda record, phase: None,
    cancel: threading.Event | None = None,
) -> Journal:
    """Run items, ``options.parallel`` at a time, and return the run's journal.

    Each item gets its own lab, record (id ``<scenario>`` or ``<scenario>@<variant>``) and
    lifecycle (its variant's phases); ``drivers.prepare`` makes the images of every
    item's agents once, before the first lab starts.

    Ctrl-C (in the calling thread) stops every scenario at its next phase boundary and
    tears its lab down; the journal then says ``interrupted``. A second Ctrl-C removes
    every lab still up and lets the interrupt through.
    """
    stop = cancel or threading.Event()
    items = [as_item(entry) for entry in entries]
    journal = Journal(
        input=run_input(
            [item.id for item in items],
            {"keep": options.keep, "parallel": options.parallel, "lab_prefix": options.lab_prefix},
            time_scale(),
            **drivers.versions(),
        ),
        scenarios=[_record(item, options.lab_prefix) for item in items],
    )
    began = time.monotonic()
    drivers.prepare([vm for item in items for vm in item.scenario.spec.vms])
    live = _LiveLabs()
    work: queue.SimpleQueue[tuple[RunItem, ScenarioRecord]] = queue.SimpleQueue()
    for pair in zip(items, journal.scenarios, strict=True):
        work.put(pair)

    count = max(1, min(options.parallel, len(items)))
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
                item, record = work.get_nowait()
            except queue.Empty:
                return
            if stop.is_set():
                _not_run(record)
                observe(record, None)
                continue
            ctx = RunContext(
                scenario=item.scenario,
                time_scale=item.time_scale,
                lab=record.lab,
                drivers=drivers,
                record=record,
                keep=options.keep,
                cancel=stop,
                on_lab_started=live.add,
                on_lab_removed=live.discard,
            )
            run_scenario(ctx, item.phases, observe)

    try:
        with signals.held():  # a signal waits until every worker runs, then stops them all
            for i in range(count):
                target = signals.unblocked(worker)
                threading.Thread(target=target, name=f"snaplab-run-{i}", daemon=True).start()
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


def _record(item: RunItem, prefix: str) -> ScenarioRecord:
    return new_record(
        item.scenario,
        lab_name(prefix, item.id),
        item.phases,
        item_id=item.id,
        variant=item.variant.name,
        time_scale=item.time_scale,
    )


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
