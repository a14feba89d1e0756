"""Every Azure duration the lab uses, written once in Azure units: one table, one clock.

A lab runs Azure's clock faster by one factor, the time scale (``SNAPLAB_TIME_SCALE`` on
the host, default 240; the extension gets it in its public settings, absent = 1, Azure's
own clock). Each duration is divided by it, so a 95-minute snapshot sub-task timeout
lasts 23.75 s and every race between the platform and the guest ends as it ends on
Azure. A duration has a floor only where a real process in the lab cannot go faster
(the agent's goal-state poll, a round trip to storage, ``sh`` starting a script); a
floor never makes a duration longer than Azure's own, so scale 1 is exactly Azure.

The platform (``lab.platform.timescale`` re-exports this module) and the VMSnapshot
extension in the guest read the same table: :mod:`lab.extension.package` ships this
file inside the handler zip as ``main/vmsnapshot/durations.py``, next to the protocol
module, and a unit test proves the shipped copy is this file. Standard library only.

Each entry says where its number comes from: a Microsoft page, the real extension's
code (github Azure/azure-linux-extensions, ``VMBackup/main``), or, where Microsoft
publishes no number, why the lab chose it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from datetime import timedelta

TIME_SCALE_ENV = "SNAPLAB_TIME_SCALE"
# 240 makes a timed-out backup job end in well under a minute (95 min / 240 = 24 s)
# while the floors below keep every window longer than the process it observes.
DEFAULT_TIME_SCALE = 240.0

PLATFORM = "platform"
GUEST = "guest"

# Physical cycles of the real agent, in lab seconds: no time scale shortens them, and
# several floors below are built from them.
AGENT_GOAL_STATE_PERIOD_SECONDS = 6.0  # waagent.conf Extensions.GoalStatePeriod (2.7+)
AGENT_2_2_GOAL_STATE_PERIOD_SECONDS = 3.0  # 2.2.x polls every 3 s, fixed


@dataclass(frozen=True)
class AzureDuration:
    """A duration as Azure defines it, and the shortest lab time that stays meaningful.

    ``what`` names it as a support engineer would, ``side`` says who waits for it
    (the platform or the extension in the guest), ``source`` where the number comes
    from and ``floor_reason`` which physical process the floor protects.
    """

    azure: timedelta
    floor_seconds: float = 0.0
    what: str = ""
    side: str = PLATFORM
    source: str = ""
    floor_reason: str = ""

    def lab_seconds(self, scale: float | None = None) -> float:
        """Azure's duration divided by the scale, never below the floor, and the floor
        never above Azure's own duration (so scale 1 is Azure's clock exactly)."""
        factor = time_scale() if scale is None else scale
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"time scale must be a positive number, got {factor}")
        azure = self.azure.total_seconds()
        return max(azure / factor, min(self.floor_seconds, azure))

    @property
    def azure_seconds(self) -> float:
        return self.azure.total_seconds()

    def with_azure_seconds(self, seconds: float) -> AzureDuration:
        """The same kind of duration with another Azure value (one a customer configured,
        e.g. a script's ``timeoutInSeconds``): same floor, same source."""
        return replace(self, azure=timedelta(seconds=seconds))

    def describe(self, scale: float) -> str:
        """``10 s on Azure's clock = 1 s in the lab (time scale 240, floor 1 s)``."""
        lab = self.lab_seconds(scale)
        floored = lab > self.azure_seconds / scale
        note = f", floor {_short(self.floor_seconds)}" if floored else ""
        return (
            f"{_short(self.azure_seconds)} on Azure's clock = {_short(lab)} in the lab "
            f"(time scale {scale:g}{note})"
        )


def time_scale() -> float:
    """The lab's time-scale factor from the host's environment (1 = Azure's own clock).

    Only the host side reads the environment; the extension takes the scale from its
    public settings (``lab.extension.protocol.PublicSettings.time_scale``).
    """
    raw = os.environ.get(TIME_SCALE_ENV, "")
    if not raw:
        return DEFAULT_TIME_SCALE
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{TIME_SCALE_ENV} must be a number, got {raw!r}") from exc
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{TIME_SCALE_ENV} must be a positive number, got {raw!r}")
    return value


def _short(seconds: float) -> str:
    """``95 min``, ``66 s``, ``23.75 s``, ``2 h 20 min``: a duration as people write it."""
    if seconds >= 7200 and seconds % 60 == 0:
        hours, minutes = divmod(int(seconds) // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds) // 60} min"
    return f"{seconds:.2f}".rstrip("0").rstrip(".") + " s"


# --- The platform ------------------------------------------------------------------

SNAPSHOT_SUBTASK_TIMEOUT = AzureDuration(
    timedelta(minutes=95),
    floor_seconds=20.0,
    what="snapshot sub-task timeout (the platform waits for the extension's final status)",
    source=(
        "Microsoft publishes no number; a real failure report shows the timeout after "
        "about 1 h 35 min of 'in progress'"
    ),
    floor_reason=(
        "a goal-state poll (6 s), a first install (manifest and zip download), enable "
        "and two of the agent's status reports"
    ),
)

AGENT_STATUS_STALE_AFTER = AzureDuration(
    timedelta(minutes=10),
    floor_seconds=20.0,
    what="agent status stale: instance view 'Not Ready', and the backup pre-check",
    source=(
        "the instance view's message 'VM status blob is found but not updated for "
        "10 minutes after last heartbeat.'"
    ),
    floor_reason="three of the agent's 6-second status cycles, so one late report is tolerated",
)

# Backup refuses to start (UserErrorGuestAgentStatusUnavailable) when the agent is not
# Ready; "not Ready" is the same staleness rule the instance view applies.
BACKUP_PRECHECK_STALE_AFTER = AGENT_STATUS_STALE_AFTER

BACKUP_SAS_EXPIRY = AzureDuration(
    timedelta(minutes=150),
    floor_seconds=60.0,
    what="SAS lifetime of a job's disk and status-blob URLs",
    source=(
        "Microsoft publishes no number; the lab's choice outlives the extension's "
        "140-minute 'too late' rule, so an on-time snapshot never meets an expired SAS"
    ),
    floor_reason="a slow snapshot plus the vault transfer",
)

HOST_SNAPSHOT_WORK = AzureDuration(
    timedelta(minutes=25),
    what="the host's own work per snapshot, holding one of its 4 snapshot slots",
    source=(
        "Microsoft publishes no number; Take Snapshot sub-tasks of small VMs commonly "
        "last tens of minutes. 25 minutes keeps a healthy job inside the sub-task "
        "timeout while a VM queued behind four others runs past it"
    ),
    floor_reason="none: it observes no guest process",
)

EXTENSION_OPERATION_TIMEOUT = AzureDuration(
    timedelta(minutes=90),
    floor_seconds=180.0,
    what="an extension operation through ARM (create, delete, Run Command) before it fails",
    source="CRP gives an extension operation 90 minutes",
    floor_reason=(
        "what an agent may spend before it looks at the new goal state (2.7.3's failed "
        "package download: two rounds a minute apart, an unscaled sleep in the agent, "
        "about 130 s), a couple of polls, disable and uninstall"
    ),
)

SUPPORT_ROLLBACK_RESPONSE = AzureDuration(
    timedelta(hours=1),
    floor_seconds=5.0,
    what=(
        "a support case about a damaged extension release: Microsoft checks the package, "
        "rolls the version back and answers in the case"
    ),
    source=(
        "Microsoft publishes no number (on Azure an answer takes hours to days); one hour "
        "is the lab's choice"
    ),
    floor_reason=(
        "the create call's poller and a first read of the case see it Open before the answer"
    ),
)

AGENT_EXTENSION_STATUS_WAIT = AzureDuration(
    timedelta(minutes=25),
    floor_seconds=30.0,
    what=(
        "an extension operation through ARM (create, Run Command) fails "
        "VMAgentStatusCommunicationError when the agent reports no status for the new "
        "settings within this"
    ),
    source=(
        "Microsoft publishes no number; two public VMAgentStatusCommunicationError failures "
        "ended 25 min 22 s (Azure/azure-powershell#5741) and 25 min 26 s "
        "(Azure/azure-xplat-cli#2794) after their operations started"
    ),
    floor_reason=(
        "a goal-state poll (6 s), the download, install and enable of a handler new to the "
        "VM, then one of the agent's 6-second status reports; not the agent's 5-minute "
        "period with extensions disabled, which no time scale shortens"
    ),
)

PLATFORM_POWER_REPORT_PERIOD = AzureDuration(
    timedelta(minutes=1),
    floor_seconds=1.0,
    what=(
        "power state follows a guest OS that halted: PowerState/stopped after a "
        "shutdown from inside"
    ),
    source=(
        "Microsoft publishes no number; one minute is the lab's choice (the host looks at "
        "its VMs twice per period and reports a halt at once)"
    ),
    floor_reason=(
        "the host's look at the guest containers through the Docker engine (a list call, "
        "an inspect per stopped one): twice a second stays a light load on a 2-core "
        "machine running three labs"
    ),
)

# --- The VMSnapshot extension in the guest -----------------------------------------

EXTENSION_TOO_LATE_AFTER = AzureDuration(
    timedelta(minutes=140),
    floor_seconds=20.0,
    what="the extension refuses a task this long after its command start (code 402)",
    side=GUEST,
    source="VMBackup/main/freezesnapshotter.py is_command_timedout: MAX_TIMESPAN = 140 * 60",
    floor_reason=(
        "the agent's delivery of the task, as for the sub-task timeout: a task the agent "
        "hands over on time is never too late"
    ),
)

STORAGE_CALL_TIMEOUT = AzureDuration(
    timedelta(seconds=10),
    floor_seconds=1.0,
    what="one storage call by the extension (snapshot, status blob) before it gives up",
    side=GUEST,
    source=(
        "VMBackup/main/HttpUtil.py: HTTPSConnection(..., timeout = 10) for storage, "
        "curl --connect-timeout 10 as its fallback"
    ),
    floor_reason=(
        "a round trip to Azurite on the lab bridge: 6-30 ms measured, so 1 s is over 30 "
        "times a healthy call even on a 2-core machine running three labs"
    ),
)

# The status blob is written up to this many times, with no pause between tries
# (VMBackup/main/blobwriter.py WriteBlockBlob: retry_times = 3). A disk's snapshot
# is one call, never retried (VMBackup/main/guestsnapshotter.py snapshot_seq).
STATUS_BLOB_WRITE_TRIES = 3

FREEZE_TIMEOUT = AzureDuration(
    timedelta(seconds=60),
    floor_seconds=5.0,
    what="vmbackup.conf 'timeout': how long the freeze holds before it thaws by itself",
    side=GUEST,
    source=(
        "VMBackup/main/handle.py and freezesnapshotter.py: [SnapshotThread] timeout, "
        "default 60, handed to the safefreeze binary"
    ),
    floor_reason=(
        "the snapshot calls made while frozen: one storage round trip per disk, each "
        "bounded by the storage call's 1 s floor"
    ),
)

SAFE_FREEZE_WAIT = AzureDuration(
    timedelta(seconds=66),
    floor_seconds=10.0,
    what="vmbackup.conf 'SafeFreezeWaitInSeconds': wait for the freeze, past it code 122",
    side=GUEST,
    source="VMBackup/main/fsfreezer.py: SafeFreezeWaitInSecondsDefault = 66",
    floor_reason=(
        "freezing a healthy guest: the lab's consistency step is 0.65 s of CPU measured "
        "on an idle guest; a host runs up to 4 snapshots at once, and with two other labs "
        "on the same 2 cores each may get a fifth of a core (about 3-4 s)"
    ),
)

SCRIPT_TIMEOUT_CAP = AzureDuration(
    timedelta(seconds=1800),
    floor_seconds=2.0,
    what="the plugin host's cap on a pre/post script's timeoutInSeconds",
    side=GUEST,
    source=(
        "VMBackup/main/PluginHost.py: timeoutInSeconds = 1800; Microsoft's "
        "application-consistent backup page: 'maximum value can be 1800'"
    ),
    floor_reason="as for a script's timeoutInSeconds",
)

SCRIPT_TIMEOUT_DEFAULT = AzureDuration(
    timedelta(seconds=10),
    floor_seconds=2.0,
    what=(
        "a pre/post script's timeoutInSeconds (the configured value is in Azure seconds; "
        "10 when the plugin config names none)"
    ),
    side=GUEST,
    source="VMBackup/main/ScriptRunner.py: timeoutInSeconds = 10 unless configured",
    floor_reason=(
        "sh starting a short script that asks its application over a local pipe: "
        "milliseconds, so 2 s holds on a loaded machine"
    ),
)

# --- The agent's handler commands (a diagnosis waits for a handler in motion) ---------

HANDLER_INSTALL_TIMEOUT = AzureDuration(
    timedelta(seconds=900),
    floor_seconds=30.0,
    what=(
        "the agent's limit on a handler's install command: a handler still NotInstalled "
        "this long after the agent began (download, unpack, install) is stuck"
    ),
    side=GUEST,
    source="WALinuxAgent ga/exthandlers.py: install, update and disable run with timeout=900",
    floor_reason=(
        "fetching the manifest and zip from the WireServer, unpacking and running the "
        "install command while nine guests share 2 cores (a storm's first backups)"
    ),
)

HANDLER_ENABLE_TIMEOUT = AzureDuration(
    timedelta(seconds=300),
    floor_seconds=15.0,
    what=(
        "the agent's limit on a handler's enable command: a handler Installed but not yet "
        "Enabled this long after install is stuck"
    ),
    side=GUEST,
    source="WALinuxAgent ga/exthandlers.py: enable runs with timeout=300",
    floor_reason=(
        "Python starting the handler's enable under load; the extension's enable returns "
        "once its worker has started"
    ),
)

# The whole table, in the order the README shows it.
TABLE: tuple[AzureDuration, ...] = (
    SNAPSHOT_SUBTASK_TIMEOUT,
    AGENT_STATUS_STALE_AFTER,
    BACKUP_SAS_EXPIRY,
    HOST_SNAPSHOT_WORK,
    EXTENSION_OPERATION_TIMEOUT,
    SUPPORT_ROLLBACK_RESPONSE,
    AGENT_EXTENSION_STATUS_WAIT,
    PLATFORM_POWER_REPORT_PERIOD,
    EXTENSION_TOO_LATE_AFTER,
    STORAGE_CALL_TIMEOUT,
    FREEZE_TIMEOUT,
    SAFE_FREEZE_WAIT,
    SCRIPT_TIMEOUT_CAP,
    SCRIPT_TIMEOUT_DEFAULT,
    HANDLER_INSTALL_TIMEOUT,
    HANDLER_ENABLE_TIMEOUT,
)


def markdown_table(scale: float = DEFAULT_TIME_SCALE) -> str:
    """The table as the README shows it: what, who waits, Azure, lab at ``scale``, floor,
    and where the number comes from."""
    rows = [
        f"| duration | side | Azure | lab at {scale:g} | floor | source |",
        "|---|---|---|---|---|---|",
    ]
    for entry in TABLE:
        lab = entry.lab_seconds(scale)
        floored = " (floor)" if lab > entry.azure_seconds / scale else ""
        floor = _short(entry.floor_seconds) if entry.floor_seconds else "-"
        rows.append(
            f"| {entry.what} | {entry.side} | {_short(entry.azure_seconds)} | "
            f"{_short(lab)}{floored} | {floor} | {entry.source} |"
        )
    return "\n".join(rows) + "\n"
