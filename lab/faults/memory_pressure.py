"""memory-pressure: the VM's memory is all but used up by memory no process owns.

An application keeps a large cache in RAM-backed scratch space (``/tmp``, a tmpfs in
this guest as on Debian 13 and most systemd distributions; ``/dev/shm`` on others): the
guest's memory limit is nearly reached and, unlike a process's own heap, those pages
cannot be freed by the kernel's OOM killer, because no process is their owner. Whatever
needs memory next (the agent starting the backup extension) makes the kernel kill the
largest processes it can: the agent. The agent restarts and is killed again, so the
snapshot status never arrives.

Why not a ``stress-ng --vm`` hog: the lab tried it, and a real VM behaves the same: the
hog's own anonymous memory is what the OOM killer takes back first (stress-ng marks its
workers as the preferred victims, and a large heap is the first choice anyway), so the
backup goes through. What a VM cannot give back is memory held outside any process.

The fault sizes the cache from what the hypervisor sees of the guest (Docker's memory
limit and the guest's resident anonymous memory), leaving ``headroom_mib`` (default 16:
enough for the idle agent, not for the agent plus the extension it starts), and runs
the application as a transient systemd unit, ``report-cache.service``, that writes
``/tmp/report-cache.bin`` and stays. Stopping the unit does not free the memory; removing
its cache does (the guest's systemd cannot give the unit a private ``/tmp``: that needs
mount namespaces a container does not grant).
"""

from __future__ import annotations

import time
from typing import Any

from lab.faults import register
from lab.faults.base import FaultError, FaultTarget

UNIT = "report-cache"
CACHE_FILE = f"/tmp/{UNIT}.bin"
DEFAULT_HEADROOM_MIB = 16
MIB = 1024 * 1024
SETTLE_TIMEOUT = 30.0


def _guest_memory(stats: dict[str, Any]) -> tuple[int, int]:
    """(limit, resident anonymous bytes) from a Docker stats sample (cgroup v1 or v2)."""
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    limit = int(memory.get("limit") or 0)
    resident = int(detail.get("total_rss", detail.get("anon", 0)) or 0)
    if limit <= 0 or resident <= 0:
        raise FaultError("Docker reports no memory limit or usage for the guest")
    return limit, resident


class MemoryPressure:
    id = "memory-pressure"
    summary = (
        "an application's RAM-backed cache leaves the VM no memory; the OOM killer takes the agent"
    )

    def inject(self, target: FaultTarget) -> None:
        headroom = int(target.params.get("headroom_mib", DEFAULT_HEADROOM_MIB))
        limit, resident = _guest_memory(target.container.stats(stream=False))
        size_mib = (limit - resident) // MIB - headroom
        if size_mib <= 0:
            raise FaultError(f"{target.vm}: no memory left to fill ({resident // MIB} MiB used)")
        target.run(
            f"systemd-run --unit={UNIT} --description='Nightly report cache' "
            "--quiet "
            f"/bin/sh -c 'fallocate -l {size_mib}M {CACHE_FILE} && exec sleep infinity'"
        )
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            charged = target.run(f"systemctl show -p MemoryCurrent --value {UNIT}").strip()
            if charged.isdigit() and int(charged) >= size_mib * MIB:
                return
            if time.monotonic() > deadline:
                raise FaultError(f"{target.vm}: {UNIT} did not fill {size_mib} MiB ({charged})")
            time.sleep(0.2)


FAULT = register(MemoryPressure())
