"""stale-agent: an agent below Azure's minimum, crashed, on a unit that never restarts it.

FACTS.md §1 cause 2 ("Linux agent out of date / not running"). What a real VM in that
state has, and what this fault changes to get there:

* an old agent — the VM must already run one below 2.2.53.1 (the lab's 2.2.47 guest,
  bullseye's package); the fault refuses a VM with a supported agent rather than fake it;
* an old-style service setup: Debian's unit as shipped, without the upstream
  ``Restart=always`` policy that the lab image adds in the drop-in ``restart.conf`` —
  the fault removes that drop-in, as old init setups never had one;
* a crash: the agent daemon is killed with SIGKILL. systemd then stops the rest of the
  unit (the extension-handler child) and, with no restart policy, leaves it dead.

The crash is in the past when the customer opens the case: the fault returns once the
platform has marked the agent *Not Ready* (its status reports stopped for the staleness
window), so a backup fails at once with ``UserErrorGuestAgentStatusUnavailable``. (A
backup started within the window is accepted and runs into the snapshot sub-task
timeout instead — the ``agent-stopped`` scenario shows that path.)
"""

from __future__ import annotations

import time

from lab.errors import PlatformError
from lab.faults import register
from lab.faults.base import FaultError, FaultTarget
from lab.platform.timescale import AGENT_STATUS_STALE_AFTER
from lab.provision.fabric_client import FabricClient

MINIMUM_SUPPORTED = (2, 2, 53, 1)
RESTART_DROP_IN = "/etc/systemd/system/walinuxagent.service.d/restart.conf"
# Beyond the staleness window: one more status cycle of the platform's clock, and slack
# for a loaded 2-core machine.
NOT_READY_SLACK_SECONDS = 30.0

_CRASH = f"""
set -e
rm -f {RESTART_DROP_IN}
systemctl daemon-reload
test "$(systemctl show -p Restart --value walinuxagent)" = no
pid=$(systemctl show -p MainPID --value walinuxagent)
if [ "$pid" = 0 ]; then echo "walinuxagent is not running: nothing to crash" >&2; exit 1; fi
kill -KILL "$pid"
for i in $(seq 1 50); do
    state=$(systemctl show -p ActiveState --value walinuxagent)
    [ "$state" = failed ] || [ "$state" = inactive ] && break
    sleep 0.2
done
! pgrep -f 'waagent -(daemon|run-exthandlers)' >/dev/null
"""


def agent_version(target: FaultTarget) -> tuple[int, ...]:
    """The installed waagent package's upstream version, read in the guest."""
    raw = target.run("dpkg-query -W -f='${Version}' waagent").strip()
    upstream = raw.split(":")[-1].split("-")[0]
    try:
        return tuple(int(part) for part in upstream.split("."))
    except ValueError as exc:
        raise FaultError(f"{target.vm}: cannot read the waagent version from {raw!r}") from exc


def wait_for_agent_status(target: FaultTarget, wanted: str, timeout: float | None = None) -> float:
    """Wait until the platform shows the VM's agent as ``wanted``; returns the seconds.

    This reads the platform's view (the fabric control API), never the guest: it is how
    long the platform takes to notice, which is what a fault that ends "in the past"
    must wait for.
    """
    limit = (
        timeout
        if timeout is not None
        else AGENT_STATUS_STALE_AFTER.lab_seconds(target.roster.time_scale)
    )
    limit += NOT_READY_SLACK_SECONDS
    fabric = FabricClient(target.roster.fabric_ip)
    started = time.monotonic()
    status = None
    while time.monotonic() - started < limit:
        try:
            status = fabric.vm(target.vm)["agent"]["status"]
        except (PlatformError, KeyError, TypeError):
            status = None
        if status == wanted:
            return time.monotonic() - started
        time.sleep(0.5)
    raise FaultError(
        f"{target.vm}: the platform still shows the agent {status!r} after {limit:.0f} s "
        f"(waiting for {wanted!r})"
    )


class StaleAgent:
    id = "stale-agent"
    summary = (
        "agent below the supported minimum, its unit without auto-restart, crashed "
        "(SIGKILL) and left dead; returns once the platform shows it Not Ready"
    )

    def inject(self, target: FaultTarget) -> None:
        version = agent_version(target)
        if version >= MINIMUM_SUPPORTED:
            shown = ".".join(map(str, version))
            raise FaultError(
                f"{target.vm}: agent {shown} is supported; stale-agent needs a VM with an "
                "agent below 2.2.53.1 (provision it with agent=2.2.47)"
            )
        target.run(_CRASH)
        wait_for_agent_status(target, "Not Ready")


register(StaleAgent())
