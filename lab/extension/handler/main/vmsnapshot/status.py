"""Writing ``status/<seq>.status``, the only channel the agent reads from the handler.

The agent polls the file concurrently, so it is written whole to a temporary name
(without the ``.status`` suffix the agent looks for) and renamed into place.

Each report is logged as the real extension logs it (``Utils/HandlerUtil.py``'s status
report and ``handle.py``'s file report): ``<operation>,<status>,<code>,<message>`` —
the real line has a fifth field, a size-computation flag the lab does not compute —
then ``file status report message:`` and the document on the next line.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from . import protocol
from .handlerenv import HandlerContext
from .log import ExtensionLog


def status_bytes(ctx: HandlerContext, result: protocol.SnapshotResult) -> bytes:
    document = result.status_document(datetime.now(UTC), name=ctx.name)
    return json.dumps(document).encode("utf-8")


def write_status(ctx: HandlerContext, seq: int, result: protocol.SnapshotResult) -> bytes:
    """Atomically replace the status file of ``seq``; returns the bytes written."""
    body = status_bytes(ctx, result)
    ctx.status_folder.mkdir(parents=True, exist_ok=True)
    final = ctx.status_file(seq)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, final)
    return body


def report_line(result: protocol.SnapshotResult) -> str:
    """``Enable,error,76,T:S Enable failed with ...``: the real status-report line."""
    return f"{protocol.STATUS_OPERATION},{result.status},{result.code},{result.message}"


def report(
    ctx: HandlerContext, seq: int, result: protocol.SnapshotResult, log: ExtensionLog
) -> bytes:
    """Write the status file of ``seq`` and log it as the real extension does."""
    log.info(report_line(result))
    body = write_status(ctx, seq, result)
    log.info("file status report message:")
    log.info(body.decode("utf-8"))
    return body
