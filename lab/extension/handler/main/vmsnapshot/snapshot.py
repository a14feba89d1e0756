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

The log follows the real guest snapshot path's lines (``VMBackup/main``:
``freezesnapshotter.py``, ``fsfreezer.py``, ``guestsnapshotter.py``, ``HttpUtil.py``):
``T:S freeze, timeout value``, ``freeze timed-out``, ``T:S freeze result ..., timedout
:<bool>``, ``T:S doing snapshot now...``, ``****** 5. Snaphotting (Guest-seq) Started``
(sic), ``index: <n> blobUri: <blob URI>`` before each disk's snapshot, ``snapshot resp
status:``, ``snapshot HttpCallGetResponse failed``, ``Failed to call http with error``,
``T:S thaw result``, the 140-minute rule's ``command start time is ... and utcNow is``,
``timespan: ... MAX_TIMESPAN`` and ``CRP timeout limit has reached, should abort.``;
the lines of the freeze window are held and written as one block when it ends
(:meth:`.log.ExtensionLog.frozen`). Where the lab does what the real one does not, its
lines say so in the same shapes: the disk sizes it reads first (``GetBlobProperties:
index: <n> blobUri: <blob URI> contentLength: ...``) and the consistency step between
``****** 2. Freeze Started`` and ``****** 3. Freeze Completed`` (how much CPU it got).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

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
    log.info(f"command start time is {_naive(public.command_start)} and utcNow is {_naive(now)}")
    log.info(
        f"timespan: {now - public.command_start}, total_span_in_seconds: {age:.1f}, "
        f"MAX_TIMESPAN: {limit:.1f} ({rule})"
    )
    if late:
        log.info("CRP timeout limit has reached, should abort.")
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
        message = "T:S taking snapshot failed as blobs are empty or none"
        log.error(message)
        return PhaseResult(protocol.CODE_NO_NETWORK, message)
    sizes = []
    for index, uri in enumerate(uris):
        try:
            size = client.blob_size(uri)
        except StorageFailure as exc:
            log.error(
                f"GetBlobProperties: index: {index} blobUri: {without_sas(uri)}: Failed to get "
                f"blob properties with error: {exc}"
            )
            return _failed(
                log, protocol.CODE_NO_NETWORK, _no_network([(index, uri, exc)], len(uris))
            )
        log.info(
            f"GetBlobProperties: index: {index} blobUri: {without_sas(uri)} contentLength: "
            f"{size} ({size / consistency.GIB:.2f} GiB)"
        )
        sizes.append(size)
    scale = task.public.time_scale
    hold = durations.FREEZE_TIMEOUT.with_azure_seconds(conf.freeze_timeout)
    if not fsfreeze:
        log.info("T:S freeze skipped: fsFreezeEnabled is false in the plugin config")
        return _snapshot_all(task, client, log, clock, None)
    wait = durations.SAFE_FREEZE_WAIT.with_azure_seconds(conf.safe_freeze_wait)
    log.info(
        f"T:S freeze, timeout value {conf.freeze_timeout} ({hold.describe(scale)}); "
        f"SafeFreezeWaitInSeconds {conf.safe_freeze_wait} ({wait.describe(scale)})"
    )
    with log.frozen():
        failed = _freeze(sizes, wait.lab_seconds(scale), log)
        if failed is not None:
            return failed
        frozen_at = time.monotonic()
        phase = _snapshot_all(task, client, log, clock, frozen_at)
        held = time.monotonic() - frozen_at
    if phase.code != protocol.CODE_SUCCESS:
        log.info("T:S thaw result ")
        return phase
    if held > hold.lab_seconds(scale):
        log.info(
            f"T:S thaw result snapshot result inconsistent: the snapshots ended {held:.2f} s "
            f"after the freeze, past its timeout ({hold.lab_seconds(scale):.2f} s): the "
            "freeze had thawed by itself"
        )
        return _failed(log, protocol.CODE_ERROR, INCONSISTENT_MESSAGE, phase.snapshots)
    log.info("T:S thaw result ")
    return phase


def _freeze(sizes: list[int], window: float, log: ExtensionLog) -> PhaseResult | None:
    """The consistency step in the freeze's place; a :class:`PhaseResult` if it failed."""
    planned = sum(consistency.work_for(size) for size in sizes)
    log.info(
        f"****** 2. Freeze Started: the consistency step hashes {planned} MiB for "
        f"{len(sizes)} disk(s) (the lab's stand-in for FIFREEZE, which its guests cannot do)"
    )
    before = datetime.now()
    try:
        report = consistency.run(sizes, window)
    except consistency.FreezeWindowExceeded as exc:
        log.error(f"freeze timed-out: {exc}")
        log.info("T:S freeze result freeze timed-out, timedout :True")
        tag = protocol.status_code_tag(protocol.CODE_FREEZE_TIMEOUT)
        message = f"T:S ###### Enable failed with error: freeze took longer than timeout{tag}"
        return _failed(log, protocol.CODE_FREEZE_TIMEOUT, f"{message} {exc}")
    after = datetime.now()
    log.info(f"****** 3. Freeze Completed: {report.summary()}")
    log.info(
        f"T:S ***** freeze, time_before_freeze={before}, time_after_freeze={after}, "
        f"freezeTimeTaken={after - before}"
    )
    log.info("T:S freeze result , timedout :False")
    return None


def _snapshot_all(
    task: Task,
    client: StorageClient,
    log: ExtensionLog,
    clock: Callable[[], datetime],
    frozen_at: float | None,
) -> PhaseResult:
    """The too-late check, then ``PUT <SAS>&comp=snapshot`` for each disk in turn."""
    if too_late(task, clock(), log):
        if frozen_at is not None:
            log.error("T:S takeSnapshotFromGuest : Thawing as failing due to CRP timeout")
        return _failed(log, protocol.CODE_TOO_LATE, protocol.TOO_LATE_MESSAGE)
    uris = task.protected.disk_sas_uris
    log.info("T:S doing snapshot now...")
    log.info("doing snapshotall now in sequence...")
    log.info("****** 5. Snaphotting (Guest-seq) Started")
    snapshots: list[protocol.DiskSnapshot] = []
    failures: list[tuple[int, str, StorageFailure]] = []
    for index, uri in enumerate(uris):
        log.info(f"index: {index} blobUri: {without_sas(uri)}")
        started = datetime.now()
        try:
            stamp = client.snapshot(uri)
        except StorageRefused as exc:
            log.error(f"snapshot resp status: {exc.status} {exc.error_code}".rstrip())
            failures.append((index, uri, exc))
            continue
        except StorageFailure as exc:
            log.error(f"snapshot HttpCallGetResponse failed: Failed to call http with error: {exc}")
            failures.append((index, uri, exc))
            continue
        log.info(
            f"snapshot resp status: 201, x-ms-snapshot: {stamp}, time taken for snapshot "
            f"{datetime.now() - started}"
        )
        snapshots.append(protocol.DiskSnapshot(without_sas(uri), stamp))
    log.info("****** 6. Snaphotting (Guest-seq) Completed")
    log.info(f"Setting all_snapshots_failed to {not snapshots}")
    log.info("T:S snapshotall ends...")
    if failures:
        code, message = _classify(failures, len(uris))
        return _failed(log, code, message, tuple(snapshots))
    return PhaseResult(protocol.CODE_SUCCESS, "", tuple(snapshots))


def _failed(
    log: ExtensionLog,
    code: int,
    message: str,
    snapshots: tuple[protocol.DiskSnapshot, ...] = (),
) -> PhaseResult:
    log.error(message)
    return PhaseResult(code, message, snapshots)


def _naive(moment: datetime) -> str:
    """A UTC time as the real extension prints its naive ``utcnow()``."""
    return str(moment.astimezone(UTC).replace(tzinfo=None))


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
