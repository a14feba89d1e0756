"""The detached worker: one backup task from pre-script to final status.

The order and the precedence of outcomes follow the real extension's daemon:

1. refuse a task that is already too late (402) — nothing else runs;
2. plugin host precheck; a broken or absent script setup means a file-system
   consistent backup (or, when ``continueBackupOnFailure`` is false, no backup);
3. pre-script; a failure or timeout stops the backup unless ``continueBackupOnFailure``
   (and always when ``fsFreezeEnabled`` is false);
4. the snapshot phase (sizes, consistency step, too-late check, snapshots);
5. post-script, which runs whenever the scripts were set up, even after a failure;
6. the verdict: a snapshot failure wins; otherwise a script that stopped the backup
   gives its code; a clean run with scripts is app-consistent (code 0), else code 1.

The final status goes to ``status/<seq>.status`` and to the status blob (up to three
tries, as the real extension's blob writer makes). Every wait runs on the task's clock:
the time scale in its public settings (absent = 1, Azure's own), applied to the table of
Azure durations the platform uses too (:mod:`.durations`).

Its log lines use the real daemon's words where it logs the same event
(``VMBackup/main/handle.py``, ``HttpUtil.py``, ``blobwriter.py``): ``starting daemon for
freezing the file system``, ``The command snapshot is being validated``, ``removing the
protected settings``, ``Creating HttpUtil``, ``cannot write status to the status blob``,
``blob written succesfully`` (sic), ``the logs blob uri is not there, so do not upload
log.``; every status written is logged as :func:`.status.report` says. The durations it
waits for are logged in Azure seconds and lab seconds.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

from . import durations, protocol, scripts
from .conf import BackupConf, agent_proxy, read_agent_conf
from .handlerenv import HandlerContext
from .log import ExtensionLog
from .paths import GuestPaths
from .settings import Task, strip_protected_settings
from .snapshot import PhaseResult, take_snapshots, too_late
from .status import report
from .storage import StorageClient, StorageFailure, without_sas

IN_PROGRESS_MESSAGE = "Transitioning state in extension"
# Precheck codes that only mean "no scripts were set up".
NOT_CONFIGURED = frozenset(
    {protocol.CODE_PLUGINHOST_CONFIG_NOT_FOUND, protocol.CODE_PLUGIN_CONFIG_NOT_FOUND}
)


@dataclass(frozen=True)
class Job:
    """Everything the worker needs, handed over from ``enable`` through the fork."""

    ctx: HandlerContext
    paths: GuestPaths
    task: Task


def in_progress(task_id: str) -> protocol.SnapshotResult:
    return protocol.SnapshotResult(
        task_id, "transitioning", protocol.CODE_IN_PROGRESS, IN_PROGRESS_MESSAGE
    )


class Reporter:
    """Writes a result to the status file and, unless disabled, to the status blob."""

    def __init__(self, job: Job, client: StorageClient, conf: BackupConf, log: ExtensionLog):
        self.job, self.client, self.conf, self.log = job, client, conf, log

    def report(self, result: protocol.SnapshotResult) -> None:
        body = report(self.job.ctx, self.job.task.seq, result, self.log)
        self._upload("status", self.job.task.protected.status_blob_uri, body, "application/json")

    def upload_log(self) -> None:
        uri = self.job.task.protected.logs_blob_uri
        if not uri:
            self.log.info("the logs blob uri is not there, so do not upload log.")
            return
        self._upload("log", uri, self.log.text().encode("utf-8"), "text/plain")

    def _upload(self, what: str, uri: str, body: bytes, content_type: str) -> None:
        if not self.conf.upload_status_and_log:
            self.log.info(f"{what} blob not written: UploadStatusAndLog is not 'True'")
            return
        tries = durations.STATUS_BLOB_WRITE_TRIES
        for attempt in range(1, tries + 1):
            try:
                self.client.put_block_blob(uri, body, content_type)
            except StorageFailure as exc:
                self.log.warning(
                    f"cannot write {what} to the {what} blob {without_sas(uri)} "
                    f"(try {attempt} of {tries}): {exc}"
                )
                continue
            self.log.info(f"{what} blob written succesfully ({len(body)} bytes)")
            return


def run(job: Job) -> protocol.SnapshotResult:
    """Do the task and report it; returns the final result."""
    started = time.monotonic()
    log = job.ctx.log()
    task = job.task
    log.info(
        f"starting daemon for freezing the file system: pid {os.getpid()}, taskId "
        f"{task.public.task_id}, seq {task.seq}, {len(task.protected.disk_sas_uris)} disk(s), "
        f"{job.ctx.name} version {job.ctx.version}"
    )
    conf = BackupConf.load(job.paths.vmbackup_conf)
    if conf.problem:
        log.warning(conf.problem)
    log.info(
        f"configfile {job.paths.vmbackup_conf} [SnapshotThread] {conf.values or '(none)'}: "
        f"timeout {conf.freeze_timeout}, SafeFreezeWaitInSeconds {conf.safe_freeze_wait} "
        f"(Azure seconds), UploadStatusAndLog {conf.upload_status_and_log}"
    )
    proxy, problem = agent_proxy(read_agent_conf(job.paths.waagent_conf))
    if problem:
        log.warning(problem)
    scale = task.public.time_scale
    call = durations.STORAGE_CALL_TIMEOUT
    route = (
        f"storage calls through HttpProxy {proxy}"
        if proxy
        else "no HttpProxy in waagent.conf, storage calls go direct"
    )
    log.info(f"Creating HttpUtil: {route}, each timing out after {call.describe(scale)}")
    client = StorageClient(proxy, timeout=call.lab_seconds(scale))
    reporter = Reporter(job, client, conf, log)
    log.info(f"The command {task.public.command} is being validated")
    if strip_protected_settings(job.ctx.settings_file(task.seq)):
        log.info("removing the protected settings")
    reporter.report(in_progress(task.public.task_id))
    try:
        result = _backup(job, client, conf, log)
    except Exception as exc:  # the task must end with a status, whatever happened
        log.error(
            f"Failed to enable the extension with error: {exc}, stack trace: "
            f"{traceback.format_exc()}"
        )
        result = protocol.SnapshotResult(
            task.public.task_id, "error", protocol.CODE_ERROR, f"Enable failed. {exc!r}"
        )
    name = protocol.CODE_NAMES.get(result.code, "?")
    log.info(
        f"daemon done after {time.monotonic() - started:.2f} s: {result.status}, code "
        f"{result.code} ({name})"
    )
    reporter.report(result)
    reporter.upload_log()
    return result


def _backup(
    job: Job, client: StorageClient, conf: BackupConf, log: ExtensionLog
) -> protocol.SnapshotResult:
    task = job.task

    def verdict(
        code: int, message: str, phase: PhaseResult | None = None
    ) -> protocol.SnapshotResult:
        status = "success" if code in protocol.SUCCESS_CODES else "error"
        taken = phase.snapshots if phase else ()
        return protocol.SnapshotResult(task.public.task_id, status, code, message, taken)

    if too_late(task, datetime.now(UTC), log):
        log.error(protocol.TOO_LATE_MESSAGE)
        return verdict(protocol.CODE_TOO_LATE, protocol.TOO_LATE_MESSAGE)

    check = scripts.precheck(job.paths, job.ctx.handler_dir)
    for note in check.notes:
        log.info(f"pre/post scripts: {note}")
    if not check.scripts_enabled:
        log.info(
            "pre/post scripts not run, file-system consistent backup:"
            f"{protocol.status_code_tag(check.code)}"
        )
    do_backup, fsfreeze = check.do_backup, check.fsfreeze
    pre = post = scripts.NO_SCRIPT
    if check.scripts_enabled and check.config:
        pre = scripts.run_script("pre", check.config, log, task.public.time_scale)
        do_backup = pre.continue_backup and not (pre.failed and not fsfreeze)

    phase = PhaseResult(protocol.CODE_SUCCESS)
    if do_backup:
        phase = take_snapshots(task, client, conf, log, fsfreeze, lambda: datetime.now(UTC))
    else:
        log.warning("snapshots not taken: the script setup stopped the backup")

    if check.scripts_enabled and check.config:
        post = scripts.run_script("post", check.config, log, task.public.time_scale)
        if not post.continue_backup or (post.failed and not fsfreeze):
            do_backup = False

    if phase.code != protocol.CODE_SUCCESS:
        return verdict(phase.code, phase.message, phase)
    if not do_backup:
        if not check.scripts_enabled:
            tag = protocol.status_code_tag(check.code)
            return verdict(check.code, f"Plugin Host Precheck Failed{tag}", phase)
        for outcome, kind in ((pre, "PreScript"), (post, "PostScript")):
            if outcome.failed:
                plugin = check.config.plugin if check.config else "ScriptRunner"
                tag = protocol.status_code_tag(outcome.code)
                return verdict(outcome.code, f"{kind} failed for the plugin {plugin}{tag}", phase)
    if check.scripts_enabled and not (pre.failed or post.failed):
        return verdict(
            protocol.CODE_SUCCESS_APP_CONSISTENT,
            "Enable Succeeded with App Consistent Snapshot",
            phase,
        )
    degraded = next((o.code for o in (pre, post) if o.failed), check.code)
    if degraded in NOT_CONFIGURED:
        degraded = 0  # no scripts set up: the usual file-system consistent backup
    note = f" (file-system consistent;{protocol.status_code_tag(degraded)})" if degraded else ""
    return verdict(protocol.CODE_SUCCESS, f"Enable Succeeded{note}", phase)
