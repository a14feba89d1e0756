"""The five commands of ``HandlerManifest.json``.

Like the real extension, only ``enable`` does anything of substance: it answers at once
with a ``transitioning`` status and leaves the backup to a worker it detaches from the
agent (double fork, new session, stdio on ``extension.log``), so the agent's 300-second
enable timeout never applies to the backup and the agent never kills the worker. Every
command exits 0: problems are reported through the status file, not the exit code.

The log lines take the real extension's wording where it logs the same event
(``VMBackup/main/handle.py`` and ``Utils/HandlerUtil.py``): ``cwd is``, ``Change log file
to``, ``starting enable``, ``sequence number from environment variable is``, ``setting
file path is``, ``set most recent sequence number to``, ``Config decoded correctly.``,
``taskId:``, ``TaskId AlreadyProcessed nothing to do``, ``Failed to call the daemon``.
The settings summary (by the schema's key names, SAS queries left out) is the lab's own.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping

from . import protocol, worker
from .handlerenv import HandlerContext
from .log import ExtensionLog
from .paths import GuestPaths
from .settings import Task, TaskError, load_task
from .status import report
from .storage import without_sas

Spawn = Callable[[worker.Job], None]


def install(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    """Make ``/etc/azure`` exist (where the guest's backup configuration lives)."""
    log = _starting(ctx, "install")
    paths.etc_azure.mkdir(parents=True, exist_ok=True)
    log.info(f"{paths.etc_azure} ready; Install Succeeded")
    return 0


def uninstall(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    _starting(ctx, "uninstall").info(
        f"the agent removes {ctx.handler_dir}; {paths.etc_azure} is the customer's and stays; "
        "Uninstall succeeded"
    )
    return 0


def update(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    _starting(ctx, "update").info("nothing to migrate; Update Succeeded")
    return 0


def disable(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    _starting(ctx, "disable").info("a running daemon finishes its task; Disable Succeeded")
    return 0


def enable(
    ctx: HandlerContext,
    paths: GuestPaths,
    environ: Mapping[str, str],
    spawn: Spawn | None = None,
) -> int:
    started = time.monotonic()
    log = _starting(ctx, "enable")
    seq = ctx.current_seq(environ)
    if seq is None:
        log.warning(f"Unable to locate a .settings file! (none in {ctx.config_folder})")
        return 0
    source = "environment variable" if ctx.seq_from_environment(environ) else "config file-names"
    log.info(f"sequence number from {source} is {seq}")
    log.info(f"setting file path is {ctx.settings_file(seq)}")
    log.info(f"current seq no is {seq}")
    for name in ctx.set_aside_other_files(seq):
        log.info(f"older {name} renamed with '_' (only seq {seq} keeps its name)")
    last = ctx.last_seq()
    if last == seq:
        log.info(f"the sequence number are same, so skip, current:{seq}== last:{last}")
        return 0
    ctx.save_seq(seq)
    log.info(f"set most recent sequence number to {seq}")
    try:
        task = load_task(ctx.settings_file(seq), seq, paths)
    except TaskError as exc:
        log.error(f"{exc.message}{protocol.status_code_tag(exc.code)}")
        failed = protocol.SnapshotResult(exc.task_id, "error", exc.code, exc.message)
        report(ctx, seq, failed, log)
        return 0
    log_settings(log, task)
    task_id = task.public.task_id
    log.info(f"taskId: {task_id}")
    stored = ctx.last_task_id()
    if stored == task_id:
        log.info(
            f"TaskId is same as last, so skip with Processed Status, current:{task_id}== "
            f"last:{stored}"
        )
        log.info("TaskId AlreadyProcessed nothing to do (no status for this seq)")
        return 0
    try:
        ctx.save_task_id(task_id)
        report(ctx, seq, worker.in_progress(task_id), log)
        log.info(f"enable pid {os.getpid()}: starting the daemon (a detached worker)")
        (spawn or detach)(worker.Job(ctx, paths, task))
    except Exception as exc:  # the real extension reports this as "Failed to call the daemon"
        log.error(
            f"Failed to call the daemon with error: {exc}, stack trace: {traceback.format_exc()}"
        )
        failed = protocol.SnapshotResult(
            task_id, "error", protocol.CODE_ERROR, f"Failed to call the daemon: {exc}"
        )
        report(ctx, seq, failed, log)
        return 0
    log.info(f"enable done in {time.monotonic() - started:.3f} s")
    return 0


def log_settings(log: ExtensionLog, task: Task) -> None:
    """What the settings asked for, by the schema's own key names; URIs without their
    SAS query, as the real extension's log lines show blob URIs."""
    public, protected = task.public, task.protected
    if task.thumbprint:
        log.info(f"protectedSettings decrypted with certificate {task.thumbprint}")
        log.info("Config decoded correctly.")
    else:
        log.info("protectedSettings not encrypted (no protectedSettingsCertThumbprint)")
    log.info(
        f"publicSettings: commandToExecute {public.command}, taskId {public.task_id}, "
        f"commandStartTimeUTCTicks {protocol.to_ticks(public.command_start)} "
        f"({public.command_start.isoformat()}), vmType {public.vm_type}"
    )
    logs_blob = without_sas(protected.logs_blob_uri) if protected.logs_blob_uri else "none"
    log.info(
        f"protectedSettings: {len(protected.disk_sas_uris)} blobSASUri, statusBlobUri "
        f"{without_sas(protected.status_blob_uri)}, logsBlobUri {logs_blob}"
    )


def _starting(ctx: HandlerContext, operation: str) -> ExtensionLog:
    """The lines every command starts with: where it runs, where it logs, what it is."""
    log = ctx.log()
    log.info(f"cwd is {ctx.handler_dir}")
    log.info(f"Change log file to {ctx.extension_log}")
    log.info(f"starting {operation}: {ctx.name} version {ctx.version}")
    return log


def detach(job: worker.Job) -> None:
    """Run the worker in a grandchild in its own session; return once it is started."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        _, wait_status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0:
            raise OSError("could not start the worker process")
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)  # the intermediate child: its exit orphans the worker to init
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    try:
        _redirect_stdio(job)
        worker.run(job)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(0)


def _redirect_stdio(job: worker.Job) -> None:
    """Point stdio at ``extension.log`` and drop every fd inherited from the agent, so
    the agent's capture of the enable command's output ends when ``enable`` exits."""
    job.ctx.log_folder.mkdir(parents=True, exist_ok=True)
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(job.ctx.extension_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)


OPERATIONS: dict[str, Callable[[HandlerContext, GuestPaths, Mapping[str, str]], int]] = {
    "install": install,
    "uninstall": uninstall,
    "update": update,
    "enable": enable,
    "disable": disable,
}
