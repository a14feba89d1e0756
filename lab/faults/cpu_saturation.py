"""cpu-saturation: a busy workload keeps the VM's CPU above 90 % and starves the snapshot.

Microsoft's cause 4d: with the CPU above 90 % the snapshot task is queued and delayed
until the sub-task times out. The VM's size is its CPU quota (a lab guest may use one
CPU); the workload is a batch job started as a systemd service, with as many CPU-bound
workers as a parallel batch or a busy application pool runs, all at normal priority
(stress-ng ``--cpu``). Every runnable task in the VM then gets an equal share of the one
CPU, so the VMSnapshot extension's consistency step (real CPU work in proportion to disk
size, see ``lab.extension``) gets about 1/(workers+1) of it and takes many times longer,
and the agent itself runs slower too — while it still reports *Ready*.

The default of 48 workers is measured, not guessed: under it the agent took 26-27 s to
install the extension and 37-38 s to enable it, past the 23.75 s sub-task timeout at the
default time scale (the extension then refuses the late task, 402); at time scale 60 the
hand-over fits and the extension's consistency step (~0.65 s of CPU idle) overruns its
10 s SafeFreezeWaitInSeconds floor instead (122). The outcome depends on the time scale:
the scenario is marked lab-only. The agent's status reports stay about within the 20 s
staleness window (gaps of up to ~21 s were seen while it ran the enable command).

Parameters: ``workers`` (default 48), ``unit`` (default ``reporting-batch``).
"""

from __future__ import annotations

import re
import shlex

from lab.faults import register
from lab.faults.base import FaultError, FaultTarget

DEFAULT_WORKERS = 48
DEFAULT_UNIT = "reporting-batch"
_UNIT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,60}$")


def start_script(unit: str, workers: int) -> str:
    """Start the workload as a transient service and wait until its workers all run."""
    name = shlex.quote(unit)
    return f"""
set -e
systemd-run --unit={name} --description='Nightly reporting batch' \\
    /usr/bin/stress-ng --cpu {workers} --quiet
for i in $(seq 1 50); do
    running=$(ps -o pid= --ppid "$(systemctl show -p MainPID --value {name})" | wc -l)
    [ "$running" -ge {workers} ] && exit 0
    sleep 0.2
done
echo "{unit}: only $running of {workers} workers started" >&2
exit 1
"""


class CpuSaturation:
    id = "cpu-saturation"
    summary = "a CPU-bound batch service (stress-ng workers) saturates the VM's CPU quota"

    def inject(self, target: FaultTarget) -> None:
        workers = target.params.get("workers", DEFAULT_WORKERS)
        unit = target.params.get("unit", DEFAULT_UNIT)
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 256:
            raise FaultError(f"{target.vm}: workers must be 1-256, got {workers!r}")
        if not isinstance(unit, str) or not _UNIT_NAME.match(unit):
            raise FaultError(f"{target.vm}: unit must be a plain unit name, got {unit!r}")
        target.run(start_script(unit, workers), timeout=60.0)


register(CpuSaturation())
