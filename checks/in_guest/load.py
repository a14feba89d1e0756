"""CPU and memory load in the guest (Microsoft's cause 4d: CPU above 90 % or high
memory use delays the snapshot task until it times out).

Both are measured against what the VM may use — its CPU quota and memory limit, the
lab's stand-in for a VM size — from the guest's own cgroup, sampled now (a snapshot is
delayed by load while it runs, so an average since boot would say nothing).
"""

from __future__ import annotations

import json
from typing import Any

from checks.context import GuestFacts
from checks.host import GuestHost, quote
from checks.in_guest.sensors import CPU_SENSOR, MEMORY_SENSOR
from checks.result import CheckResult

CPU_LIMIT = 0.90  # "CPU > 90 %", Microsoft's threshold
# Runnable tasks per CPU, averaged over the sample: the sysadmin's rule that a load above
# twice the CPU count is an overloaded machine. A healthy VM runs one or two tasks at a
# time; a saturating workload runs many more than it has CPUs.
RUN_QUEUE_LIMIT = 2.0
MEMORY_LIMIT = 0.90  # working set as a share of what the VM may use
MEMORY_BUSY = 0.80  # ... and this much while the limit is being hit right now
PRESSURE_LIMIT = 10.0  # PSI "some avg10": share of time tasks stalled on memory

MiB = 1024 * 1024


def _sense(host: GuestHost, script: str) -> dict[str, Any] | str:
    out = host.run(f"python3 -c {quote(script)}")
    try:
        data = json.loads(out.stdout)
    except ValueError:
        text = (out.stderr or out.stdout).strip().splitlines()
        return f"the guest's sensor failed (exit {out.rc}): {text[-1] if text else 'no output'}"
    return data if isinstance(data, dict) else "the guest's sensor printed no figures"


def cpu_load(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """The VM's own CPU demand over ~1 s, against what the VM may use (its quota, or its
    CPUs). Busy means either of two things, both about the VM's own work:

    - it used more than 90 % of its CPUs (Azure's "CPU above 90 %");
    - or its run queue averaged more than :data:`RUN_QUEUE_LIMIT` runnable tasks per CPU
      (time on a CPU plus time runnable and waiting for one, summed over its tasks): a
      VM whose host hands it less than its quota still has far more work than CPUs.

    Waiting alone is never demand: a healthy VM's few tasks also wait when the host under
    it is busy with other tenants (on Azure that shows as steal time, not as the VM's CPU
    percentage), and one waiting task is a run queue of one."""
    check = "guest.cpu_load"
    data = _sense(host, CPU_SENSOR)
    if isinstance(data, str):
        return CheckResult.unobserved(check, data)
    quota = data.get("quota_cpus")
    capacity = float(quota) if quota else float(data.get("cpus") or 1)
    elapsed = float(data.get("elapsed") or 1.0)
    used = float(data.get("used_seconds") or 0.0) / (elapsed * capacity)
    waited = float(data.get("waited_seconds") or 0.0) / elapsed
    ran = float(data.get("ran_seconds", data.get("used_seconds")) or 0.0) / elapsed
    run_queue = (ran + waited) / capacity
    bound = f"CPU quota of {capacity:g} CPU" if quota else f"{capacity:g} CPU(s)"
    top = ", ".join(
        f"{comm} (pid {pid}) {seconds / elapsed:.0%}"
        for comm, pid, seconds in data.get("top", [])[:3]
    )
    detail = (
        f"CPU use {used:.0%} of the VM's {bound} over {elapsed:.1f} s, run queue "
        f"{run_queue:.1f} task(s) per CPU; top: {top or 'none'}"
    )
    if used > CPU_LIMIT:
        return CheckResult.fail(check, f"{detail} (use above {CPU_LIMIT:.0%})")
    if run_queue > RUN_QUEUE_LIMIT:
        return CheckResult.fail(
            check, f"{detail} (run queue above {RUN_QUEUE_LIMIT:g} per CPU: more work than CPUs)"
        )
    return CheckResult.ok(check, detail)


def memory_pressure(host: GuestHost, facts: GuestFacts) -> CheckResult:
    """The highest working set (usage minus inactive file cache) seen over ~1 s against
    the memory limit, OOM kills and limit hits during that second, and PSI where the
    kernel gives it for the guest. A hog that is OOM-killed and restarts shows a low
    working set at one instant; the peak and the kills catch it."""
    check = "guest.memory"
    data = _sense(host, MEMORY_SENSOR)
    if isinstance(data, str):
        return CheckResult.unobserved(check, data)
    first, last = data.get("first"), data.get("second")
    total = int(data.get("mem_total") or 0)
    if not isinstance(first, dict) or not isinstance(last, dict):
        used = total - int(data.get("mem_available") or 0)
        limit, hits, kills, total_kills = total, 0, 0, 0
        pressure = _psi(data.get("system_pressure") or [])
    else:
        limit = min(int(last["limit"]) or total, total) if total else int(last["limit"])
        peak = data.get("peak_working_set")
        used = int(peak) if peak is not None else int(last["usage"]) - int(last["inactive_file"])
        hits = int(last["limit_hits"]) - int(first["limit_hits"])
        total_kills = int(last["oom_kills"])
        kills = total_kills - int(first["oom_kills"])
        pressure = _psi([last["pressure"]] if last.get("pressure") else [])
        if pressure is None:
            pressure = _psi(data.get("system_pressure") or [])
    share = used / limit if limit else 0.0
    parts = [
        f"working set up to {used / MiB:.0f} MiB of {limit / MiB:.0f} MiB ({share:.0%})",
        f"limit hit {hits} time(s) and {kills} OOM kill(s) in the last second"
        f" ({total_kills} OOM kill(s) in all)",
    ]
    if pressure is not None:
        parts.append(f"memory PSI some avg10 {pressure:.1f} %")
    top = ", ".join(
        f"{name} (pid {pid}) {rss / MiB:.0f} MiB" for name, pid, rss in data.get("top", [])
    )
    parts.append(f"top: {top or 'none'}")
    detail = "; ".join(parts)
    pressed = (
        share >= MEMORY_LIMIT
        or kills > 0
        or (share >= MEMORY_BUSY and hits > 0)
        or (pressure is not None and pressure >= PRESSURE_LIMIT)
    )
    return CheckResult.fail(check, detail) if pressed else CheckResult.ok(check, detail)


def _psi(lines: list[str]) -> float | None:
    """``some avg10=12.34 ...`` -> 12.34."""
    for line in lines:
        for field in line.split():
            if field.startswith("avg10="):
                try:
                    return float(field.removeprefix("avg10="))
                except ValueError:
                    return None
    return None
