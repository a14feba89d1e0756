"""Will the class fit this machine? What one lab costs, measured, and the refusal.

Every number below was measured on this project's machine (2 cores, 23.5 GiB RAM, Docker
with cgroup v1) on 2026-12-07, while other helpers' labs ran beside it:

- ``docker stats`` every second during ``snaplab up --scenario blocked-egress`` and 20 s
  after it, then the same for schedule-storm's nine VMs: a lab's platform containers hold
  about 155 MiB idle (storage 65, fabric 48, ARM twin 40); a guest (systemd, the agent,
  sshd) about 46 MiB idle, 59 MiB during a backup; a guest's boot takes ~65 % of a core
  for a few seconds, the ARM twin's start ~25 %; an idle lab uses under 1 % of a core;
- ``python bench/bench_drill.py`` (six trainees: agent-stopped, blocked-egress,
  cpu-saturation, memory-pressure, prescript-hang, schedule-storm; each container's cgroup
  ``memory.max_usage_in_bytes``): peaks per lab of storage 138 MiB, fabric 76, ARM twin
  41, the trainee's SSH forwarder 10 (265 together), the memory-pressure guest its whole
  1024 MiB limit; the 38 containers' peaks sum to 3199 MiB, the host's used memory rose
  by 3007 MiB at most; the start took 135 s and the containers 86 CPU-seconds.

So a lab is budgeted at its platform's peak plus, per VM, a guest's peak, or the guest's
whole limit for a scenario whose fault loads memory; the refusal keeps a margin for the
host, dockerd and snaplab itself. Parallel starts are bounded by the cores.

CPU is budgeted too, measured the same day with ``docker stats`` 20 s after ``up``: an idle
lab (platform and one guest) uses 0.4 % of a core; a cpu-saturation lab's guest its whole
quota (99.6 % of its one CPU) for as long as the drill runs; a healthy backup 1.5
CPU-seconds over its 15 s. A 40-trainee random class (three cpu-saturation labs, three
cores of work on two) passed the memory budget and then failed at its 24th lab: with
every core held by stress workers, the other labs' backups ran past the sub-task
timeout. The six-trainee class of the benchmark (one cpu-saturation lab) started and
checked cleanly. So the loaded guests' quotas and the idle labs' share must leave
:data:`FREE_CORES` of the machine's cores for starts, checks and the host.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lab.errors import SnaplabError
from lab.provision.containers import GUEST_CPUS
from lab.scenario import Scenario

MIB = 1024 * 1024
PLATFORM_MIB = 270  # storage 138 + fabric 76 + ARM twin 41 + SSH forwarder 10, peaks
GUEST_MIB = 64  # one guest's peak at boot (46 MiB idle)
GUEST_LIMIT_MIB = 1024  # a guest container's memory limit (what a memory fault may fill)
MEMORY_FAULTS = frozenset({"memory-pressure"})  # faults that fill their guest's memory
HOST_MARGIN_MIB = 1536  # dockerd, the host's services, snaplab and its worker threads
STARTS_PER_CORE = 2  # a lab's start spends half its time waiting (agent, fabric, backup)
CPU_FAULTS = frozenset({"cpu-saturation"})  # faults that keep their guest's CPU quota busy
IDLE_LAB_CORES = 0.004  # an idle lab, platform and guest (measured 0.4 % of a core)
FREE_CORES = 0.9  # left for starts (a guest's boot ~65 % of a core), checks and the host


class ClassTooBig(SnaplabError):
    """The drill would not fit this machine (memory or cores); nothing was started."""

    exit_code = 2


def lab_mib(scenario: Scenario) -> int:
    """What one trainee's lab of ``scenario`` is budgeted at, in MiB."""
    loaded = {f.vm for f in scenario.spec.faults if f.fault in MEMORY_FAULTS}
    guests = sum(GUEST_LIMIT_MIB if vm.name in loaded else GUEST_MIB for vm in scenario.spec.vms)
    return PLATFORM_MIB + guests


def need_mib(scenarios: Sequence[Scenario]) -> int:
    return sum(lab_mib(s) for s in scenarios) + HOST_MARGIN_MIB


def available_mib(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Memory the machine can still give (``MemAvailable``), in MiB."""
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    raise SnaplabError(f"{meminfo}: no MemAvailable line")


def gib(mib: int) -> str:
    return f"{mib / 1024:.1f} GiB"


def check_fits(scenarios: Sequence[Scenario], free_mib: int | None = None) -> int:
    """Refuse, in one line, a class that will not fit; returns the MiB it needs."""
    need = need_mib(scenarios)
    free = available_mib() if free_mib is None else free_mib
    if need > free:
        raise ClassTooBig(
            f"{len(scenarios)} trainees need ~{gib(need)} "
            f"(each lab {PLATFORM_MIB} MiB + {GUEST_MIB} MiB a VM, {GUEST_LIMIT_MIB} MiB for "
            f"a VM under memory pressure, {HOST_MARGIN_MIB} MiB for the host), "
            f"this machine has {gib(free)} free"
        )
    return need


def lab_cores(scenario: Scenario) -> float:
    """The cores one trainee's lab keeps busy for the whole drill."""
    loaded = {f.vm for f in scenario.spec.faults if f.fault in CPU_FAULTS}
    return IDLE_LAB_CORES + GUEST_CPUS * sum(1 for vm in scenario.spec.vms if vm.name in loaded)


def check_cores(scenarios: Sequence[Scenario], cores: int | None = None) -> float:
    """Refuse, in one line, a class whose steady load leaves too little CPU for the rest."""
    count = cores if cores is not None else (os.cpu_count() or 1)
    busy = sum(lab_cores(s) for s in scenarios)
    if busy + FREE_CORES > count:
        loaded = sum(1 for s in scenarios if lab_cores(s) > IDLE_LAB_CORES)
        raise ClassTooBig(
            f"{len(scenarios)} trainees keep ~{busy:.1f} cores busy ({loaded} lab(s) whose "
            f"fault holds a whole CPU, {IDLE_LAB_CORES * 100:.1f} % of a core for any other), "
            f"and {FREE_CORES:g} core must stay free for starts and checks: this machine "
            f"has {count} core(s)"
        )
    return busy


def start_workers(trainees: int, cores: int | None = None) -> int:
    """How many labs start at once: the cores bound it (a start is CPU-bound)."""
    count = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(trainees, count * STARTS_PER_CORE))
