"""The host's snapshot slots: four at a time, first come first served."""

from __future__ import annotations

import threading

import pytest

from lab.platform.backup.slots import HOST_SNAPSHOT_SLOTS, HostSnapshotSlots


def test_the_host_takes_four_snapshots_at_a_time() -> None:
    assert HOST_SNAPSHOT_SLOTS == 4
    slots = HostSnapshotSlots()
    for n in range(6):
        assert slots.enqueue(f"job-{n}") == n
    assert slots.busy() == ["job-0", "job-1", "job-2", "job-3"]
    assert slots.waiting() == ["job-4", "job-5"]
    assert [slots.holds(f"job-{n}") for n in range(6)] == [True] * 4 + [False] * 2


def test_a_released_slot_goes_to_the_oldest_waiting_job() -> None:
    slots = HostSnapshotSlots(limit=2)
    for job in ("a", "b", "c", "d"):
        slots.enqueue(job)
    slots.release("b")
    assert slots.busy() == ["a", "c"] and slots.waiting() == ["d"]
    slots.release("d")  # a waiting job may leave too (its timeout ran out)
    slots.release("a")
    assert slots.busy() == ["c"] and slots.waiting() == []


def test_enqueue_is_idempotent_and_release_of_strangers_is_harmless() -> None:
    slots = HostSnapshotSlots(limit=1)
    assert slots.enqueue("a") == 0
    assert slots.enqueue("b") == 1
    assert slots.enqueue("a") == 0  # keeps its place
    slots.release("nobody")
    assert slots.position("b") == 1
    assert slots.position("nobody") is None


def test_a_host_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one"):
        HostSnapshotSlots(limit=0)


def test_concurrent_jobs_never_hold_more_than_the_limit() -> None:
    slots = HostSnapshotSlots()
    peak: list[int] = []
    lock = threading.Lock()

    def job(name: str) -> None:
        slots.enqueue(name)
        while not slots.holds(name):
            pass
        with lock:
            peak.append(len(slots.busy()))
        slots.release(name)

    threads = [threading.Thread(target=job, args=(f"j{n}",)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(peak) == 20 and max(peak) <= 4
    assert slots.busy() == []
