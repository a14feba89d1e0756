"""extensions-disabled: ``Extensions.Enabled=n`` in ``/etc/waagent.conf``, agent restarted.

Microsoft's 2025 troubleshooting article names this Linux configuration as a cause of
``GuestAgentSnapshotTaskStatusError``: the agent keeps running and keeps reporting
*Ready* with its version, but it no longer processes extensions, so the backup's new
VMSnapshot settings are never handed to the handler and no snapshot status ever comes.
The real agent (2.7.3.0) logs "Extensions.Enabled is set to False, not processing the
operation" for each goal state, and keeps reporting the extension's last status.

The fault edits the setting as an administrator would (the line the package ships,
``Extensions.Enabled=y``, becomes ``n``; a file without the line gets one) and restarts
the agent so it reads the file again. It returns once the restarted agent's first status
report has reached the platform: the agent is up, has handled the goal state it found at
start, and only its extension handling is off. (Agents from about 2.10 on report an
error for each extension of a goal state they see with extensions off; returning before
that first report let a backup's goal state reach a 2.12 agent at its start, ending the
job at once on that error instead of at its 5-minute check.)

With extensions disabled the real agent checks for goal states and reports status only
every 5 minutes (its ``GOAL_STATE_PERIOD_EXTENSIONS_DISABLED``), well inside Azure's
10-minute staleness window, so Azure keeps showing it Ready. That period is the agent's own
and is not time-scaled, so in the lab the platform marks it Not Ready about 20 s after
that first report: a backup must start right after the fault to reach the snapshot
sub-task (a later one fails the pre-check with ``UserErrorGuestAgentStatusUnavailable``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from lab.errors import PlatformError
from lab.faults import register
from lab.faults.base import FaultError, FaultTarget
from lab.provision.fabric_client import FabricClient

CONF = "/etc/waagent.conf"
REPORT_TIMEOUT_SECONDS = 30.0


def edit_script(conf: str = CONF) -> str:
    """Set ``Extensions.Enabled=n`` in ``conf``: the package's line if it is there, else
    a new one; fails unless the file then says exactly that."""
    return f"""
set -e
conf={conf}
if grep -Eq '^[[:space:]]*Extensions\\.Enabled=' "$conf"; then
    sed -i -E 's/^[[:space:]]*Extensions\\.Enabled=.*/Extensions.Enabled=n/' "$conf"
else
    echo 'Extensions.Enabled=n' >> "$conf"
fi
grep -qx 'Extensions.Enabled=n' "$conf"
"""


# Restart the agent so it reads the file; wait up to 20 s for its extension handler.
RESTART_AGENT = """
systemctl restart walinuxagent
for i in $(seq 1 100); do
    pgrep -f 'waagent -run-exthandlers' >/dev/null && exit 0
    sleep 0.2
done
echo "the agent did not come back after 'systemctl restart walinuxagent'" >&2
exit 1
"""


class ExtensionsDisabled:
    id = "extensions-disabled"
    summary = "Extensions.Enabled=n in /etc/waagent.conf, agent restarted (still running)"

    def inject(self, target: FaultTarget) -> None:
        # The platform shows report times to the second: only a report stamped after the
        # second in which the agent was restarted is surely the restarted agent's (one
        # from the old agent in that same second would otherwise count).
        restarted = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        target.run(edit_script() + RESTART_AGENT)
        wait_for_report_since(target, restarted)


def wait_for_report_since(target: FaultTarget, since: datetime) -> None:
    """Wait until the platform holds a status report the agent sent at or after ``since``
    (read from the fabric, the platform's view, never from the guest)."""
    fabric = FabricClient(target.roster.fabric_ip)
    deadline = time.monotonic() + REPORT_TIMEOUT_SECONDS
    last = None
    while time.monotonic() < deadline:
        try:
            last = fabric.vm(target.vm)["agent"]["last_report"]
        except (PlatformError, KeyError, TypeError):
            last = None
        if last and datetime.fromisoformat(str(last).replace("Z", "+00:00")) >= since:
            return
        time.sleep(0.5)
    raise FaultError(
        f"{target.vm}: no status report from the restarted agent within "
        f"{REPORT_TIMEOUT_SECONDS:.0f} s (last report {last})"
    )


register(ExtensionsDisabled())
