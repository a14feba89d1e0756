"""The snapshot phase: disk sizes, the consistency step, the too-late check, the snapshots.

Mirrors the real extension's guest snapshot path: snapshots are taken one disk after the
other with ``PUT <SAS URL>&comp=snapshot``; any disk that fails makes the task
FailedRetryableSnapshotFailedNoNetwork (76) unless storage said the blob has too many
snapshots (85) or the snapshot rate was exceeded (173). The "too late" rule is checked
again right before the snapshots, as a slow freeze can push a task past it.

Both freeze durations of ``vmbackup.conf`` run on the task's clock (:mod:`.durations`):
the consistency step, which stands in for getting the file systems frozen, must end
within ``SafeFreezeWaitInSeconds`` (else 122, as the real extension reports a freeze
that did not happen in time); the snapshots taken while "frozen" must end within
``timeout``, after which the real freeze binary thaws by itself and the real extension
reports the snapshots inconsistent (code 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from . import consistency, durations, protocol
from .conf import BackupConf
from .log import ExtensionLog
from .settings import Task
from .storage import NoNetwork, StorageClient, StorageFailure, StorageRefused, without_sas

SNAPSHOT_LIMIT_TEXT = "The snapshot count against this blob has been exceeded"
SNAPSHOT_RATE_TEXT = "The rate of snapshot blob calls is exceeded"
NO_NETWORK_MESSAGE = "T:S Enable failed with FailedRetryableSnapshotFailedNoNetwork error"
INCONSISTENT_MESSAGE = "Snapshots are inconsistent"


@dataclass(frozen=True)
class PhaseResult:
    code: int
    message: str = ""
    snapshots: tuple[protocol.DiskSnapshot, ...] = ()


def too_late(task: Task, now: datetime, log: ExtensionLog) -> bool:
    """The real rule: refuse once more than 140 (scaled) minutes passed since the start."""
    public = task.public
    age = (now - public.command_start).total_seconds()
    limit = (public.too_late_at() - public.command_start).total_seconds()
    late = now > public.too_late_at()
    rule = durations.EXTENSION_TOO_LATE_AFTER.describe(public.time_scale)
    log.info(
        f"command started {public.command_start.isoformat()} ({age:.1f} s ago); too late after "
        f"{limit:.1f} s ({rule}): {'too late' if late else 'in time'}"
    )
    return late


def take_snapshots(
    task: Task,
    client: StorageClient,
    conf: BackupConf,
    log: ExtensionLog,
    fsfreeze: bool,
    clock: Callable[[], datetime],
) -> PhaseResult:
    uris = task.protected.disk_sas_uris
    if not uris:
        return PhaseResult(
            protocol.CODE_NO_NETWORK, "T:S taking snapshot failed as blobs are empty or none"
        )
    sizes = []
    for index, uri in enumerate(uris):
        try:
            size = client.blob_size(uri)
        except StorageFailure as exc:
            log.error(f"disk {index} {without_sas(uri)}: cannot read its size: {exc}")
            return PhaseResult(
                protocol.CODE_NO_NETWORK, _no_network([(index, uri, exc)], len(uris))
            )
        log.info(f"disk {index} {without_sas(uri)}: {size / consistency.GIB:.2f} GiB")
        sizes.append(size)
    scale = task.public.time_scale
    hold = durations.FREEZE_TIMEOUT.with_azure_seconds(conf.freeze_timeout)
    if fsfreeze:
        wait = durations.SAFE_FREEZE_WAIT.with_azure_seconds(conf.safe_freeze_wait)
        log.info(
            f"consistency step: SafeFreezeWaitInSeconds {wait.describe(scale)}; "
            f"freeze timeout {hold.describe(scale)}"
        )
        try:
            report = consistency.run(sizes, wait.lab_seconds(scale))
        except consistency.FreezeWindowExceeded as exc:
            log.error(f"consistency step: {exc}")
            tag = protocol.status_code_tag(protocol.CODE_FREEZE_TIMEOUT)
            message = f"T:S ###### Enable failed with error: freeze took longer than timeout{tag}"
            return PhaseResult(protocol.CODE_FREEZE_TIMEOUT, f"{message} {exc}")
        log.info(f"consistency step: {report.summary()}")
    else:
        log.info("consistency step skipped: fsFreezeEnabled is false")
    frozen_at = time.monotonic()
    if too_late(task, clock(), log):
        log.error(protocol.TOO_LATE_MESSAGE)
        return PhaseResult(protocol.CODE_TOO_LATE, protocol.TOO_LATE_MESSAGE)
    snapshots: list[protocol.DiskSnapshot] = []
    failures: list[tuple[int, str, StorageFailure]] = []
    for index, uri in enumerate(uris):
        started = time.monotonic()
        try:
            stamp = client.snapshot(uri)
        except StorageFailure as exc:
            log.error(f"disk {index} {without_sas(uri)}: snapshot failed: {exc}")
            failures.append((index, uri, exc))
            continue
        took = time.monotonic() - started
        log.info(f"disk {index} {without_sas(uri)}: snapshot {stamp} in {took:.3f} s")
        snapshots.append(protocol.DiskSnapshot(without_sas(uri), stamp))
    if failures:
        code, message = _classify(failures, len(uris))
        return PhaseResult(code, message, tuple(snapshots))
    held = time.monotonic() - frozen_at
    if fsfreeze and held > hold.lab_seconds(scale):
        log.error(
            f"snapshots took {held:.2f} s after the freeze, past its timeout "
            f"({hold.lab_seconds(scale):.2f} s): the freeze had thawed by itself"
        )
        return PhaseResult(protocol.CODE_ERROR, INCONSISTENT_MESSAGE, tuple(snapshots))
    return PhaseResult(protocol.CODE_SUCCESS, "", tuple(snapshots))


def _classify(failures: list[tuple[int, str, StorageFailure]], total: int) -> tuple[int, str]:
    bodies = [exc.body for _, _, exc in failures if isinstance(exc, StorageRefused)]
    if any(SNAPSHOT_LIMIT_TEXT in body for body in bodies):
        tag = protocol.status_code_tag(protocol.CODE_SNAPSHOT_LIMIT)
        return (
            protocol.CODE_SNAPSHOT_LIMIT,
            f"T:S Enable failed with FailedSnapshotLimitReached{tag}",
        )
    if any(SNAPSHOT_RATE_TEXT in body for body in bodies):
        return (
            protocol.CODE_SNAPSHOT_RATE_EXCEEDED,
            "Retrying when snapshot failed with SnapshotRateExceeded",
        )
    return protocol.CODE_NO_NETWORK, _no_network(failures, total)


def _no_network(failures: list[tuple[int, str, StorageFailure]], total: int) -> str:
    index, uri, exc = failures[0]
    kind = "could not reach storage" if isinstance(exc, NoNetwork) else "storage refused"
    return (
        f"{NO_NETWORK_MESSAGE}{protocol.status_code_tag(protocol.CODE_NO_NETWORK)} "
        f"{len(failures)} of {total} disk(s) failed; disk {index} ({without_sas(uri)}): "
        f"{kind}: {exc}"
    )
