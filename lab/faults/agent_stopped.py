"""agent-stopped: the current agent's service is stopped and stays stopped.

FACTS.md §1 cause 2 ("Linux agent ... not running"). An administrator, a configuration
tool or a failed package update leaves the agent's service stopped: ``systemctl stop``
ends both agent processes (the daemon and its ``-run-exthandlers`` child), and systemd's
``Restart=always`` does not apply to a stop someone asked for. The agent's status reports
to the platform stop, and nothing in the guest picks up a new goal state any more.

The service is whichever unit runs the agent's daemon (``walinuxagent`` on Debian and
Ubuntu, ``waagent`` on RHEL and SUSE): the administrator's ``ps -o unit=`` on the daemon's
process tells, as it would on any of them.

The fault returns as soon as both processes are gone. A backup started within the
platform's staleness window is accepted and then runs into the snapshot sub-task timeout
(``GuestAgentSnapshotTaskStatusError``); one started later fails the pre-check instead
(``UserErrorGuestAgentStatusUnavailable``, the ``stale-agent`` scenario's path).
"""

from __future__ import annotations

from lab.faults import register
from lab.faults.base import FaultTarget

# Sets $agent_unit to the systemd unit of the running agent daemon; fails without one.
FIND_AGENT_UNIT = """
daemon=$(pgrep -o -f 'waagent -daemon' || true)
if [ -z "$daemon" ]; then
    echo "no waagent -daemon process: the agent is not running" >&2
    exit 1
fi
agent_unit=$(ps -o unit= -p "$daemon" | tr -d ' ')
case "$agent_unit" in
    *.service) ;;
    *) echo "the waagent daemon (pid $daemon) runs in no service unit: '$agent_unit'" >&2; exit 1 ;;
esac
"""

# Waits up to 10 s for both agent processes to end; exits 1 if one survives the stop.
STOP_AGENT = (
    FIND_AGENT_UNIT
    + """
systemctl stop "$agent_unit"
# Only the interpreter's processes: this script's own command line names the daemon too.
for i in $(seq 1 50); do
    pgrep -f 'python.*waagent -(daemon|run-exthandlers)' >/dev/null || exit 0
    sleep 0.2
done
echo "waagent is still running after 'systemctl stop $agent_unit'" >&2
exit 1
"""
)


class AgentStopped:
    id = "agent-stopped"
    summary = "the agent's service stopped with systemctl; both agent processes gone"

    def inject(self, target: FaultTarget) -> None:
        target.run(STOP_AGENT)


register(AgentStopped())
