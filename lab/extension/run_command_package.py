"""The Run Command handler zip the fabric serves: ``<HANDLER_NAME>__<version>.zip``.

Built like the VMSnapshot package (:mod:`lab.extension.package`): the files of
``lab/extension/run_command/`` (``HandlerManifest.json``, ``bin/run-command-shim``,
``bin/run_command.py``), deterministic (fixed timestamps, sorted entries, fixed modes,
scripts executable), so the fabric can rebuild it at every start and a guest always runs
the handler of the fabric's own image. Azure's handler is
``Microsoft.CPlat.Core.RunCommandLinux``; the version the lab offers is one that Azure's
Linux VMs commonly run. Standard library only: the fabric container runs it.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

HANDLER_NAME = "Microsoft.CPlat.Core.RunCommandLinux"
HANDLER_VERSIONS = ("1.0.5",)
LATEST_VERSION = HANDLER_VERSIONS[-1]
HANDLER_DIR = Path(__file__).parent / "run_command"
EXECUTABLES = frozenset({"bin/run-command-shim", "bin/run_command.py"})
_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_name(version: str) -> str:
    return f"{HANDLER_NAME}__{version}.zip"


def build_run_command_zip(version: str) -> bytes:
    """The handler package for one of :data:`HANDLER_VERSIONS`."""
    if version not in HANDLER_VERSIONS:
        raise ValueError(
            f"unknown Run Command handler version {version!r} "
            f"(known: {', '.join(HANDLER_VERSIONS)})"
        )
    entries = {
        path.relative_to(HANDLER_DIR).as_posix(): path.read_bytes()
        for path in sorted(HANDLER_DIR.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the modes below are honoured
            info.external_attr = (0o100755 if name in EXECUTABLES else 0o100644) << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def write_run_command_zips(directory: Path) -> list[Path]:
    """Write ``<HANDLER_NAME>__<version>.zip`` for every version; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for version in HANDLER_VERSIONS:
        path = directory / zip_name(version)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(build_run_command_zip(version))
        tmp.replace(path)
        written.append(path)
    return written
