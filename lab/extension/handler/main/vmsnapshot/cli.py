"""``python3 main/handle.py <operation>``: find the handler's folders, run one command."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from .handlerenv import HandlerContext, HandlerEnvironmentError
from .operations import OPERATIONS
from .paths import GuestPaths


def main(argv: list[str], environ: Mapping[str, str] = os.environ, cwd: Path | None = None) -> int:
    operation = argv[0].lstrip("-/") if argv else ""
    if operation not in OPERATIONS:
        print(f"usage: handle.py {{{'|'.join(OPERATIONS)}}}", file=sys.stderr)
        return 2
    try:
        ctx = HandlerContext.load(cwd or Path.cwd(), environ)
    except HandlerEnvironmentError as exc:
        print(f"{operation}: {exc}", file=sys.stderr)  # nowhere else to say it
        return 0
    try:
        return OPERATIONS[operation](ctx, GuestPaths.from_env(environ), environ)
    except Exception:  # an exit code would only make the agent retry; the log explains
        traceback.print_exc()
        return 0
