"""Runs the backup policies' schedules: at a policy's run time, every VM on it at once.

Azure starts a policy's scheduled backups for all of its VMs at (or near) the policy's
run time; nothing spreads them over the host. The scheduler looks at the Azure clock a
few times per Azure minute and, for each policy whose run time came round since it last
looked, starts a scheduled job for each of the policy's VMs, in the order they joined
the policy. One :meth:`Scheduler.tick` is one look, so tests drive it with a fake
clock; :meth:`Scheduler.run` is the loop the fabric runs in a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from lab.platform.backup.policy import AzureClock
from lab.platform.backup.store import BackupStore

log = logging.getLogger(__name__)

# Lab seconds between looks: at 240 a quarter second is one Azure minute, the
# granularity of a schedule run time.
TICK_SECONDS = 0.25

StartScheduled = Callable[[str, str], object]  # (vm, policy name)


class Scheduler:
    """Starts scheduled jobs through ``start(vm, policy)`` when their time comes."""

    def __init__(self, store: BackupStore, azure_clock: AzureClock, start: StartScheduled) -> None:
        self.store = store
        self.azure_clock = azure_clock
        self.start = start
        self._last: datetime | None = None

    def tick(self) -> list[tuple[str, str]]:
        """One look at the clock; returns the (policy, vm) pairs it started."""
        now = self.azure_clock.now()
        last, self._last = self._last, now
        if last is None:
            return []
        started = []
        for policy in self.store.policies():
            if not policy.runs_between(last, now):
                continue
            vms = self.store.protected_vms(policy.name)
            log.info(
                "policy %s: scheduled run at %s (Azure clock) for %d VM(s): %s",
                policy.name,
                policy.run_time,
                len(vms),
                ", ".join(vms) or "none",
            )
            for vm in vms:
                try:
                    self.start(vm, policy.name)
                except Exception:  # one VM's failure must not stop the others' jobs
                    log.exception("policy %s: could not start the job of %s", policy.name, vm)
                    continue
                started.append((policy.name, vm))
        return started

    def run(
        self,
        stop: threading.Event,
        tick_seconds: float = TICK_SECONDS,
    ) -> None:
        """Tick until ``stop`` is set (the fabric's scheduler thread)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a bad tick must not end the schedules for good
                log.exception("backup scheduler: tick failed")
            stop.wait(tick_seconds)
