"""CPU and memory figures from the guest's sensors, judged on the host."""

from __future__ import annotations

import json

from checks.fakes import fake_context, healthy_host
from checks.in_guest.load import cpu_load, memory_pressure

FACTS = fake_context().facts


def cpu(used: float, quota: float | None = 1.0, waited: float = 0.0) -> str:
    return json.dumps(
        {
            "cgroup": "/x",
            "cpus": 2,
            "quota_cpus": quota,
            "used_seconds": used,
            "waited_seconds": waited,
            "elapsed": 1.0,
            "top": [["stress-ng-cpu", 345, used + waited]],
        }
    )


def memory(
    usage_mib: int,
    hits: int = 0,
    kills: int = 0,
    new_kills: int = 0,
    peak_mib: int | None = None,
    pressure: str | None = None,
) -> str:
    mib = 1024 * 1024
    first = {
        "limit": 1024 * mib,
        "usage": usage_mib * mib,
        "inactive_file": 0,
        "limit_hits": 100,
        "oom_kills": kills,
        "pressure": pressure,
    }
    last = dict(first, limit_hits=100 + hits, oom_kills=kills + new_kills)
    return json.dumps(
        {
            "cgroup": "/y",
            "first": first,
            "second": last,
            "peak_working_set": (peak_mib if peak_mib is not None else usage_mib) * mib,
            "mem_total": 24000 * mib,
            "mem_available": 20000 * mib,
            "system_pressure": [],
            "top": [["stress-ng-vm", 400, usage_mib * mib]],
        }
    )


def test_idle_cpu_passes() -> None:
    assert cpu_load(healthy_host(), FACTS).passed


def test_hog_above_ninety_percent_of_the_quota_fails() -> None:
    result = cpu_load(healthy_host().on("cpu.cfs_quota_us", cpu(0.99)), FACTS)
    assert not result.passed
    assert "CPU use 99% of the VM's CPU quota of 1 CPU" in result.detail
    assert "stress-ng-cpu (pid 345)" in result.detail


def test_without_a_quota_the_cpu_count_is_the_bound() -> None:
    result = cpu_load(healthy_host().on("cpu.cfs_quota_us", cpu(1.0, quota=None)), FACTS)
    assert result.passed and "CPU use 50% of the VM's 2 CPU(s)" in result.detail


def test_a_run_queue_far_above_the_cpus_is_demand_even_when_the_host_starves_the_vm() -> None:
    """48 workers on a 1-CPU VM whose host hands it only 62 % of its quota."""
    result = cpu_load(healthy_host().on("cpu.cfs_quota_us", cpu(0.62, waited=47.0)), FACTS)
    assert not result.passed
    assert "CPU use 62%" in result.detail and "run queue 47.6 task(s) per CPU" in result.detail


def test_a_healthy_vm_waiting_on_a_busy_host_is_not_saturated() -> None:
    """Two labs' hogs on the same host: the healthy VM's agent waits for a CPU most of the
    second. That is the host's contention (steal on Azure), not the VM's own demand."""
    result = cpu_load(healthy_host().on("cpu.cfs_quota_us", cpu(0.08, waited=0.9)), FACTS)
    assert result.passed, result.detail


def test_broken_sensor_is_not_observed() -> None:
    host = healthy_host().on("cpu.cfs_quota_us", "", rc=127, stderr="sh: python3: not found")
    result = cpu_load(host, FACTS)
    assert not result.observed and "python3: not found" in result.detail


def test_idle_memory_passes() -> None:
    assert memory_pressure(healthy_host(), FACTS).passed


def test_working_set_near_the_limit_fails() -> None:
    result = memory_pressure(healthy_host().on("memory.failcnt", memory(990)), FACTS)
    assert not result.passed and "up to 990 MiB of 1024 MiB (97%)" in result.detail


def test_limit_being_hit_while_busy_fails() -> None:
    host = healthy_host().on("memory.failcnt", memory(860, hits=57, kills=2))
    result = memory_pressure(host, FACTS)
    assert not result.passed
    assert "limit hit 57 time(s)" in result.detail and "(2 OOM kill(s) in all)" in result.detail


def test_a_hog_killed_and_restarted_while_sampled_fails() -> None:
    host = healthy_host().on("memory.failcnt", memory(480, hits=5000, new_kills=1, peak_mib=700))
    result = memory_pressure(host, FACTS)
    assert not result.passed and "1 OOM kill(s) in the last second" in result.detail


def test_the_peak_of_the_samples_counts() -> None:
    host = healthy_host().on("memory.failcnt", memory(400, peak_mib=1000))
    assert not memory_pressure(host, FACTS).passed


def test_past_oom_kills_alone_do_not_fail() -> None:
    assert memory_pressure(healthy_host().on("memory.failcnt", memory(100, kills=3)), FACTS).passed


def test_cache_reclaim_at_a_low_working_set_is_not_pressure() -> None:
    assert memory_pressure(healthy_host().on("memory.failcnt", memory(300, hits=40)), FACTS).passed


def test_cgroup_pressure_counts() -> None:
    host = healthy_host().on(
        "memory.failcnt", memory(300, pressure="some avg10=35.20 avg60=20.00 avg300=5.00 total=1")
    )
    result = memory_pressure(host, FACTS)
    assert not result.passed and "PSI some avg10 35.2 %" in result.detail
