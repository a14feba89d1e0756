"""The consistency step: real CPU work in proportion to the disks' size.

A real VMSnapshot freezes the file systems and flushes them before the snapshots; how
long that takes depends on the VM's load. The lab's guests cannot freeze their
overlay file systems, so this step stands in for it with work that the guest's CPU must
actually do: ``MIB_PER_GIB`` MiB of SHA-256 per GiB of disk. On an idle guest it takes a
fraction of a second; on a guest whose CPU is saturated (the "CPU > 90 %" cause) it takes
proportionally longer, which is how that scenario delays the snapshot. The step runs in
the freeze window of ``vmbackup.conf``'s ``timeout``: running past it is
FailedRetryableFsFreezeTimeout, as a freeze that takes too long is in a real VM.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

MIB = 1 << 20
GIB = 1 << 30
# MiB of SHA-256 per GiB of disk: the lab's 30 GiB OS disk costs ~960 MiB, about half a
# CPU-second on a current x86 core. Idle, that is noise next to the lab's ~24 s snapshot
# sub-task timeout; starved to a few percent of a CPU, it is not.
MIB_PER_GIB = 32
_BLOCK = bytes(range(256)) * (MIB // 256)  # 1 MiB of data to hash


@dataclass(frozen=True)
class DiskWork:
    mib: int
    digest: str


@dataclass(frozen=True)
class ConsistencyReport:
    disks: tuple[DiskWork, ...]
    wall_seconds: float
    cpu_seconds: float

    @property
    def mib(self) -> int:
        return sum(d.mib for d in self.disks)

    def summary(self) -> str:
        rate = self.mib / self.wall_seconds if self.wall_seconds > 0 else float("inf")
        share = self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 1.0
        return (
            f"hashed {self.mib} MiB in {self.wall_seconds:.3f} s wall, "
            f"{self.cpu_seconds:.3f} s CPU ({rate:.0f} MiB/s, the worker had "
            f"{share:.0%} of a CPU)"
        )


class FreezeWindowExceeded(Exception):
    def __init__(self, seconds: float, mib_done: int, mib_total: int) -> None:
        super().__init__(
            f"consistency step still running after {seconds:.1f} s "
            f"({mib_done} of {mib_total} MiB hashed)"
        )


def work_for(size_bytes: int) -> int:
    """MiB to hash for a disk of this size (at least 1 for any non-empty disk)."""
    if size_bytes <= 0:
        return 0
    return max(1, -(-size_bytes * MIB_PER_GIB // GIB))


def run(sizes: list[int], window_seconds: float) -> ConsistencyReport:
    """Hash ``work_for(size)`` MiB per disk; raise if the freeze window closes first."""
    plan = [work_for(size) for size in sizes]
    total = sum(plan)
    started, cpu_started = time.monotonic(), time.process_time()
    done: list[DiskWork] = []
    hashed = 0
    for mib in plan:
        digest = hashlib.sha256()
        for _ in range(mib):
            digest.update(_BLOCK)
            hashed += 1
            elapsed = time.monotonic() - started
            if elapsed > window_seconds:
                raise FreezeWindowExceeded(elapsed, hashed, total)
        done.append(DiskWork(mib, digest.hexdigest()[:16]))
    return ConsistencyReport(
        tuple(done), time.monotonic() - started, time.process_time() - cpu_started
    )
