"""What the backup service sends the VMSnapshot extension, and what it reports back.

The shapes follow the published VMSnapshot extension schema: public settings carry
``locale``, ``taskId``, ``commandToExecute``, ``commandStartTimeUTCTicks`` and
``vmType``; protected settings (encrypted to the VM's tenant certificate) carry
``objectStr`` (base64 of a JSON object whose ``blobSASUri`` lists the per-disk blob SAS
URIs, as the real extension's parameter parser reads it), ``logsBlobUri`` and
``statusBlobUri``. One lab-only public key, ``snaplabTimeScale``, tells the extension
how fast the lab clock runs, so every duration it waits for (storage calls, the freeze,
pre/post scripts, the 140-minute "too late" rule; :mod:`.durations`) runs on the same
clock as the platform's timeouts. Without it the extension runs on Azure's own clock.

Status codes are the real extension's own numbering (its ``common.py`` error enum), so a
code seen in the lab means what it means in a real VM's extension log. The extension
writes one status file per sequence number; :meth:`SnapshotResult.status_document`
builds it and :meth:`SnapshotResult.from_status` reads it back, from the file or from
the ``settingsStatus.status`` the agent forwards to the platform.

Standard library only: this module is imported by the fabric and shipped inside the
extension's zip.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import durations

HANDLER_NAME = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
HANDLER_VERSIONS = ("1.0.91.0", "1.0.92.0")
LATEST_VERSION = HANDLER_VERSIONS[-1]

COMMAND_SNAPSHOT = "snapshot"
VM_TYPE = "microsoft.compute/virtualmachines"
TIME_SCALE_KEY = "snaplabTimeScale"

# Status codes the extension reports (its own numbering, as the real one's: the names in
# CODE_NAMES are the real enum's, so logs and messages can be searched for them).
CODE_SUCCESS_APP_CONSISTENT = 0  # pre- and post-scripts ran and succeeded
CODE_SUCCESS = 1  # file-system consistent snapshot (no scripts, or a script failed but
#                   continueBackupOnFailure let the backup go on)
CODE_ERROR = 2  # unexpected failure inside the extension
CODE_IN_PROGRESS = 4  # ExtensionTempTerminalState: what a transitioning status carries
CODE_INVALID_SETTINGS = 11
CODE_CERTIFICATE_NOT_FOUND = 16  # protected settings could not be decrypted
CODE_NO_NETWORK = 76  # FailedRetryableSnapshotFailedNoNetwork
CODE_SNAPSHOT_LIMIT = 85
CODE_FREEZE_FAILED = 121
CODE_FREEZE_TIMEOUT = 122
CODE_SNAPSHOT_RATE_EXCEEDED = 173
CODE_PRESCRIPT_FAILED = 300  # the pre-script exited non-zero
CODE_POSTSCRIPT_FAILED = 301
CODE_PRESCRIPT_NOT_FOUND = 302
CODE_POSTSCRIPT_NOT_FOUND = 303
CODE_PLUGINHOST_CONFIG_PARSING = 304
CODE_PLUGIN_CONFIG_PARSING = 305
CODE_PRESCRIPT_PERMISSION = 306
CODE_POSTSCRIPT_PERMISSION = 307
CODE_PRESCRIPT_TIMEOUT = 308  # the pre-script ran past timeoutInSeconds
CODE_POSTSCRIPT_TIMEOUT = 309
CODE_PLUGINHOST_PRE_TIMEOUT = 310  # the plugin host gave up waiting for its plugins
CODE_PLUGINHOST_POST_TIMEOUT = 311
CODE_PLUGINHOST_CONFIG_NOT_FOUND = 313
CODE_PLUGINHOST_CONFIG_PERMISSION = 314
CODE_PLUGIN_CONFIG_NOT_FOUND = 316
CODE_PLUGIN_CONFIG_PERMISSION = 317
CODE_TOO_LATE = 402  # "CRP timeout limit has reached, will not take snapshot."

SUCCESS_CODES = frozenset({CODE_SUCCESS_APP_CONSISTENT, CODE_SUCCESS})

CODE_NAMES: dict[int, str] = {
    CODE_SUCCESS_APP_CONSISTENT: "success_appconsistent",
    CODE_SUCCESS: "success",
    CODE_ERROR: "error",
    CODE_IN_PROGRESS: "ExtensionTempTerminalState",
    CODE_INVALID_SETTINGS: "error_parameter",
    CODE_CERTIFICATE_NOT_FOUND: "FailedHandlerGuestAgentCertificateNotFound",
    CODE_NO_NETWORK: "FailedRetryableSnapshotFailedNoNetwork",
    CODE_SNAPSHOT_LIMIT: "FailedSnapshotLimitReached",
    CODE_FREEZE_FAILED: "FailedRetryableFsFreezeFailed",
    CODE_FREEZE_TIMEOUT: "FailedRetryableFsFreezeTimeout",
    CODE_SNAPSHOT_RATE_EXCEEDED: "FailedRetryableSnapshotRateExceeded",
    CODE_PRESCRIPT_FAILED: "FailedPrepostPreScriptFailed",
    CODE_POSTSCRIPT_FAILED: "FailedPrepostPostScriptFailed",
    CODE_PRESCRIPT_NOT_FOUND: "FailedPrepostPreScriptNotFound",
    CODE_POSTSCRIPT_NOT_FOUND: "FailedPrepostPostScriptNotFound",
    CODE_PLUGINHOST_CONFIG_PARSING: "FailedPrepostPluginhostConfigParsing",
    CODE_PLUGIN_CONFIG_PARSING: "FailedPrepostPluginConfigParsing",
    CODE_PRESCRIPT_PERMISSION: "FailedPrepostPreScriptPermissionError",
    CODE_POSTSCRIPT_PERMISSION: "FailedPrepostPostScriptPermissionError",
    CODE_PRESCRIPT_TIMEOUT: "FailedPrepostPreScriptTimeout",
    CODE_POSTSCRIPT_TIMEOUT: "FailedPrepostPostScriptTimeout",
    CODE_PLUGINHOST_PRE_TIMEOUT: "FailedPrepostPluginhostPreTimeout",
    CODE_PLUGINHOST_POST_TIMEOUT: "FailedPrepostPluginhostPostTimeout",
    CODE_PLUGINHOST_CONFIG_NOT_FOUND: "FailedPrepostPluginhostConfigNotFound",
    CODE_PLUGINHOST_CONFIG_PERMISSION: "FailedPrepostPluginhostConfigPermissionError",
    CODE_PLUGIN_CONFIG_NOT_FOUND: "FailedPrepostPluginConfigNotFound",
    CODE_PLUGIN_CONFIG_PERMISSION: "FailedPrepostPluginConfigPermissionError",
    CODE_TOO_LATE: "FailedGuestAgentInvokedCommandTooLate",
}


def status_code_tag(code: int) -> str:
    """`` StatusCode.<Name>,`` as the real extension appends it to its messages."""
    return f" StatusCode.{CODE_NAMES.get(code, str(code))},"


TOO_LATE_AFTER = durations.EXTENSION_TOO_LATE_AFTER.azure
TOO_LATE_MESSAGE = "CRP timeout limit has reached, will not take snapshot."

# The one substatus entry of the extension's status: its message is the JSON of
# SnapshotResult.substatus_message().
SUBSTATUS_NAME = "VMSnapshotResult"
STATUS_OPERATION = "Enable"

_TICKS_AT_EPOCH = 621355968000000000  # .NET ticks (100 ns since 0001-01-01) at 1970-01-01


def to_ticks(moment: datetime) -> int:
    """.NET ticks of an aware datetime, as Azure writes commandStartTimeUTCTicks."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return _TICKS_AT_EPOCH + (delta // timedelta(microseconds=1)) * 10


def from_ticks(ticks: int) -> datetime:
    """The aware UTC datetime of .NET ticks (truncated to microseconds)."""
    micros = (ticks - _TICKS_AT_EPOCH) // 10
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


class SettingsError(ValueError):
    """Settings that do not follow the schema (the extension reports them as an error)."""


@dataclass(frozen=True)
class PublicSettings:
    task_id: str
    command_start: datetime
    time_scale: float = 1.0
    locale: str = "en-us"
    command: str = COMMAND_SNAPSHOT
    vm_type: str = VM_TYPE

    def too_late_at(self) -> datetime:
        """When the extension stops taking snapshots for this task: 140 Azure minutes
        after the command start, on the lab's clock (:data:`durations.EXTENSION_TOO_LATE_AFTER`)."""
        limit = durations.EXTENSION_TOO_LATE_AFTER.lab_seconds(self.time_scale)
        return self.command_start + timedelta(seconds=limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "locale": self.locale,
            "taskId": self.task_id,
            "commandToExecute": self.command,
            "commandStartTimeUTCTicks": str(to_ticks(self.command_start)),
            "vmType": self.vm_type,
            TIME_SCALE_KEY: self.time_scale,
        }

    @classmethod
    def from_json(cls, raw: Any) -> PublicSettings:
        if not isinstance(raw, dict):
            raise SettingsError("publicSettings is not an object")
        try:
            ticks = int(raw["commandStartTimeUTCTicks"])
            task_id = str(raw["taskId"])
            command = str(raw["commandToExecute"])
            scale = float(raw.get(TIME_SCALE_KEY, 1.0))
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"publicSettings: {exc!r}") from exc
        if not math.isfinite(scale) or scale <= 0:
            raise SettingsError(f"publicSettings: {TIME_SCALE_KEY} must be a positive number")
        return cls(
            task_id=task_id,
            command_start=from_ticks(ticks),
            time_scale=scale,
            locale=str(raw.get("locale", "en-us")),
            command=command,
            vm_type=str(raw.get("vmType", VM_TYPE)),
        )


@dataclass(frozen=True)
class ProtectedSettings:
    disk_sas_uris: tuple[str, ...]
    status_blob_uri: str
    logs_blob_uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        listing = {"blobSASUri": list(self.disk_sas_uris)}
        object_str = base64.b64encode(json.dumps(listing).encode()).decode()
        return {
            "objectStr": object_str,
            "logsBlobUri": self.logs_blob_uri,
            "statusBlobUri": self.status_blob_uri,
        }

    @classmethod
    def from_json(cls, raw: Any) -> ProtectedSettings:
        """Parse protected settings; ``objectStr`` may hold ``{"blobSASUri": [...]}`` (the
        real schema) or, as earlier lab builds wrote it, a bare list of SAS URIs."""
        if not isinstance(raw, dict):
            raise SettingsError("protectedSettings is not an object")
        try:
            decoded = json.loads(base64.b64decode(raw["objectStr"], validate=True))
            status_blob = str(raw["statusBlobUri"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SettingsError(f"protectedSettings: {exc!r}") from exc
        uris = decoded.get("blobSASUri") if isinstance(decoded, dict) else decoded
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise SettingsError("protectedSettings: objectStr.blobSASUri is not a list of SAS URIs")
        logs = raw.get("logsBlobUri")
        return cls(tuple(uris), status_blob, None if logs is None else str(logs))


@dataclass(frozen=True)
class DiskSnapshot:
    """One disk's snapshot as the extension reports it in its substatus."""

    blob_uri: str  # without the SAS query
    snapshot: str  # the x-ms-snapshot timestamp storage returned

    def to_json(self) -> dict[str, str]:
        return {"blobUri": self.blob_uri, "snapshotTime": self.snapshot}


@dataclass(frozen=True)
class SnapshotResult:
    """The extension's verdict for one task: what goes into status/<seq>.status."""

    task_id: str
    status: str  # "transitioning" | "success" | "error"
    code: int
    message: str
    snapshots: tuple[DiskSnapshot, ...] = field(default=())

    @property
    def terminal(self) -> bool:
        return self.status in ("success", "error")

    def substatus_message(self) -> str:
        return json.dumps(
            {"taskId": self.task_id, "snapshots": [s.to_json() for s in self.snapshots]},
            sort_keys=True,
        )

    @property
    def succeeded(self) -> bool:
        """A snapshot was taken: ``success`` carries code 0 (app-consistent) or 1."""
        return self.status == "success"

    def status_document(self, now: datetime, name: str = HANDLER_NAME) -> list[dict[str, Any]]:
        """The ``status/<seq>.status`` document: a one-element list, as the agent reads it."""
        stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return [
            {
                "version": "1.0",
                "timestampUTC": stamp,
                "status": {
                    "name": name,
                    "operation": STATUS_OPERATION,
                    "status": self.status,
                    "code": self.code,
                    "formattedMessage": {"lang": "en-US", "message": self.message},
                    "substatus": [
                        {
                            "name": SUBSTATUS_NAME,
                            "status": self.status,
                            "code": self.code,
                            "formattedMessage": {
                                "lang": "en-US",
                                "message": self.substatus_message(),
                            },
                        }
                    ],
                },
            }
        ]

    @classmethod
    def from_status(cls, status: Any) -> SnapshotResult:
        """Read a result from the status object (``[0]["status"]`` of the status file, or
        the ``settingsStatus.status`` the agent reports), found by its substatus."""
        if not isinstance(status, dict):
            raise SettingsError("status is not an object")
        entries = status.get("substatus") or []
        entry = next(
            (e for e in entries if isinstance(e, dict) and e.get("name") == SUBSTATUS_NAME),
            None,
        )
        if entry is None:
            raise SettingsError(f"status has no {SUBSTATUS_NAME} substatus")
        try:
            code = int(status["code"])
            message = str((status.get("formattedMessage") or {}).get("message", ""))
            sub_message = str(entry["formattedMessage"]["message"])
            state = str(status["status"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SettingsError(f"status: {exc!r}") from exc
        return cls.from_substatus(state, code, message, sub_message)

    @classmethod
    def from_substatus(
        cls, status: str, code: int, message: str, substatus_message: str
    ) -> SnapshotResult:
        try:
            info = json.loads(substatus_message)
            snapshots = tuple(
                DiskSnapshot(str(s["blobUri"]), str(s["snapshotTime"]))
                for s in info.get("snapshots", [])
            )
            task_id = str(info["taskId"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SettingsError(f"substatus: {exc!r}") from exc
        return cls(task_id, status, code, message, snapshots)
