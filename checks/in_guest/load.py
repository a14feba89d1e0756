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
    """CPU demand over ~1 s — time the guest's tasks ran plus time they were runnable
    but waited for a CPU — as a share of the VM's quota (or its CPUs). Counting the wait
    keeps a busy VM busy when the host under it is slow to hand out its quota."""
    check = "guest.cpu_load"
    data = _sense(host, CPU_SENSOR)
    if isinstance(data, str):
        return CheckResult.unobserved(check, data)
    quota = data.get("quota_cpus")
    capacity = float(quota) if quota else float(data.get("cpus") or 1)
    elapsed = float(data.get("elapsed") or 1.0)
    used = float(data.get("used_seconds") or 0.0) / (elapsed * capacity)
    waited = float(data.get("waited_seconds") or 0.0) / (elapsed * capacity)
    demand = min(used + waited, 1.0)
    bound = f"CPU quota of {capacity:g} CPU" if quota else f"{capacity:g} CPU(s)"
    top = ", ".join(
        f"{comm} (pid {pid}) {seconds / elapsed:.0%}"
        for comm, pid, seconds in data.get("top", [])[:3]
    )
    detail = (
        f"CPU demand {demand:.0%} of the VM's {bound} over {elapsed:.1f} s "
        f"(running {used:.0%}, waiting for a CPU {waited:.0%}); top: {top or 'none'}"
    )
    if demand > CPU_LIMIT:
        return CheckResult.fail(check, f"{detail} (above {CPU_LIMIT:.0%})")
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
