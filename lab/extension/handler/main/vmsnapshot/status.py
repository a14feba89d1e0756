"""Writing ``status/<seq>.status``, the only channel the agent reads from the handler.

The agent polls the file concurrently, so it is written whole to a temporary name
(without the ``.status`` suffix the agent looks for) and renamed into place.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from . import protocol
from .handlerenv import HandlerContext


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
