"""Azure durations and the lab clock, for the platform side.

The table itself lives in :mod:`lab.extension.durations`, because the VMSnapshot
extension in the guest must read the very same numbers and that module is shipped inside
the handler zip; this module re-exports it so the platform's code keeps one import.
"""

from __future__ import annotations

from lab.extension.durations import (
    AGENT_2_2_GOAL_STATE_PERIOD_SECONDS,
    AGENT_EXTENSION_STATUS_WAIT,
    AGENT_GOAL_STATE_PERIOD_SECONDS,
    AGENT_STATUS_STALE_AFTER,
    BACKUP_PRECHECK_STALE_AFTER,
    BACKUP_SAS_EXPIRY,
    DEFAULT_TIME_SCALE,
    EXTENSION_OPERATION_TIMEOUT,
    EXTENSION_TOO_LATE_AFTER,
    FREEZE_TIMEOUT,
    HANDLER_ENABLE_TIMEOUT,
    HANDLER_INSTALL_TIMEOUT,
    HOST_SNAPSHOT_WORK,
    PLATFORM_POWER_REPORT_PERIOD,
    SAFE_FREEZE_WAIT,
    SCRIPT_TIMEOUT_CAP,
    SCRIPT_TIMEOUT_DEFAULT,
    SNAPSHOT_SUBTASK_TIMEOUT,
    STATUS_BLOB_WRITE_TRIES,
    STORAGE_CALL_TIMEOUT,
    SUPPORT_ROLLBACK_RESPONSE,
    TABLE,
    TIME_SCALE_ENV,
    AzureDuration,
    markdown_table,
    time_scale,
)

__all__ = [
    "AGENT_2_2_GOAL_STATE_PERIOD_SECONDS",
    "AGENT_EXTENSION_STATUS_WAIT",
    "AGENT_GOAL_STATE_PERIOD_SECONDS",
    "AGENT_STATUS_STALE_AFTER",
    "BACKUP_PRECHECK_STALE_AFTER",
    "BACKUP_SAS_EXPIRY",
    "DEFAULT_TIME_SCALE",
    "EXTENSION_OPERATION_TIMEOUT",
    "EXTENSION_TOO_LATE_AFTER",
    "FREEZE_TIMEOUT",
    "HANDLER_ENABLE_TIMEOUT",
    "HANDLER_INSTALL_TIMEOUT",
    "HOST_SNAPSHOT_WORK",
    "PLATFORM_POWER_REPORT_PERIOD",
    "SAFE_FREEZE_WAIT",
    "SCRIPT_TIMEOUT_CAP",
    "SCRIPT_TIMEOUT_DEFAULT",
    "SNAPSHOT_SUBTASK_TIMEOUT",
    "STATUS_BLOB_WRITE_TRIES",
    "STORAGE_CALL_TIMEOUT",
    "SUPPORT_ROLLBACK_RESPONSE",
    "TABLE",
    "TIME_SCALE_ENV",
    "AzureDuration",
    "markdown_table",
    "time_scale",
]
