"""The five commands of ``HandlerManifest.json``.

Like the real extension, only ``enable`` does anything of substance: it answers at once
with a ``transitioning`` status and leaves the backup to a worker it detaches from the
agent (double fork, new session, stdio on ``extension.log``), so the agent's 300-second
enable timeout never applies to the backup and the agent never kills the worker. Every
command exits 0: problems are reported through the status file, not the exit code.
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
from .settings import TaskError, load_task
from .status import write_status

Spawn = Callable[[worker.Job], None]


def install(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    """Make ``/etc/azure`` exist (where the guest's backup configuration lives)."""
    log = ExtensionLog(ctx.extension_log)
    paths.etc_azure.mkdir(parents=True, exist_ok=True)
    log.info(f"install: {ctx.name} {ctx.version} in {ctx.handler_dir}; {paths.etc_azure} ready")
    return 0


def uninstall(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    ExtensionLog(ctx.extension_log).info(
        f"uninstall: {ctx.name} {ctx.version}; the agent removes {ctx.handler_dir}, "
        f"{paths.etc_azure} is the customer's and stays"
    )
    return 0


def update(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    ExtensionLog(ctx.extension_log).info(f"update: to {ctx.name} {ctx.version}; nothing to migrate")
    return 0


def disable(ctx: HandlerContext, paths: GuestPaths, environ: Mapping[str, str]) -> int:
    ExtensionLog(ctx.extension_log).info(
        f"disable: {ctx.name} {ctx.version}; a running worker finishes its task"
    )
    return 0


def enable(
    ctx: HandlerContext,
    paths: GuestPaths,
    environ: Mapping[str, str],
    spawn: Spawn | None = None,
) -> int:
    started = time.monotonic()
    log = ExtensionLog(ctx.extension_log)
    seq = ctx.current_seq(environ)
    if seq is None:
        log.warning(f"enable: no <seq>.settings in {ctx.config_folder}: nothing to do")
        return 0
    for name in ctx.set_aside_other_files(seq):
        log.info(f"enable: older {name} renamed with '_' (only seq {seq} stays current)")
    if ctx.last_seq() == seq:
        log.info(f"enable: sequence number {seq} was already handled (mrseq): nothing to do")
        return 0
    ctx.save_seq(seq)
    try:
        task = load_task(ctx.settings_file(seq), seq, paths)
    except TaskError as exc:
        log.task_id = exc.task_id
        log.error(f"enable: seq {seq}: {exc.message}{protocol.status_code_tag(exc.code)}")
        write_status(ctx, seq, protocol.SnapshotResult(exc.task_id, "error", exc.code, exc.message))
        return 0
    log.task_id = task.public.task_id
    if ctx.last_task_id() == task.public.task_id:
        log.info("enable: TaskId AlreadyProcessed nothing to do (no status for this seq)")
        return 0
    try:
        ctx.save_task_id(task.public.task_id)
        write_status(ctx, seq, worker.in_progress(task.public.task_id))
        source = f"decrypted with {task.thumbprint}" if task.thumbprint else "not encrypted"
        log.info(
            f"enable: seq {seq}, {len(task.protected.disk_sas_uris)} disk(s), protected "
            f"settings {source}; status transitioning; starting the worker"
        )
        (spawn or detach)(worker.Job(ctx, paths, task))
    except Exception as exc:  # the real extension reports this as "Failed to call the daemon"
        log.error(f"enable: {traceback.format_exc()}")
        failed = protocol.SnapshotResult(
            task.public.task_id, "error", protocol.CODE_ERROR, f"Failed to call the daemon: {exc}"
        )
        write_status(ctx, seq, failed)
        return 0
    log.info(f"enable: done in {time.monotonic() - started:.3f} s")
    return 0


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
