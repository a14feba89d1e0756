"""The handler zip the fabric serves: ``<HANDLER_NAME>__<version>.zip``.

The zip holds ``lab/extension/handler/`` (manifest, shell wrapper, Python package) with
the modules the platform shares with the handler — ``protocol.py`` (the settings and
status contract) and ``durations.py`` (the table of Azure durations) — put where the
handler imports them from (``main/vmsnapshot/``, replacing the repository's stand-ins),
and the manifest's ``version`` set to the requested one. It is deterministic — fixed
timestamps, sorted entries, fixed modes (scripts executable) — so a recipe hash or a
cache of it never changes by itself.
Standard library only: the fabric container runs it.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from lab.extension import protocol

HANDLER_DIR = Path(__file__).parent / "handler"
# Zip entry -> the repository module shipped in its place (one source for both sides).
SHARED_MODULES = {
    "main/vmsnapshot/protocol.py": Path(__file__).parent / "protocol.py",
    "main/vmsnapshot/durations.py": Path(__file__).parent / "durations.py",
}
MANIFEST_ENTRY = "HandlerManifest.json"
EXECUTABLES = frozenset({"main/handle.sh", "main/handle.py"})
_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_name(version: str) -> str:
    return f"{protocol.HANDLER_NAME}__{version}.zip"


def build_handler_zip(version: str) -> bytes:
    """The handler package for one of ``protocol.HANDLER_VERSIONS``."""
    if version not in protocol.HANDLER_VERSIONS:
        known = ", ".join(protocol.HANDLER_VERSIONS)
        raise ValueError(f"unknown handler version {version!r} (known: {known})")
    entries = {name: path.read_bytes() for name, path in _handler_files().items()}
    for entry, source in SHARED_MODULES.items():
        entries[entry] = source.read_bytes()
    entries[MANIFEST_ENTRY] = _manifest(entries[MANIFEST_ENTRY], version)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the modes below are honoured
            info.external_attr = (0o100755 if name in EXECUTABLES else 0o100644) << 16
            archive.writestr(info, entries[name])
    return buffer.getvalue()


def write_handler_zips(directory: Path) -> list[Path]:
    """Write ``<HANDLER_NAME>__<version>.zip`` for every version; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for version in protocol.HANDLER_VERSIONS:
        path = directory / zip_name(version)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(build_handler_zip(version))
        tmp.replace(path)
        written.append(path)
    return written


def _handler_files() -> dict[str, Path]:
    files = {}
    for path in HANDLER_DIR.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[path.relative_to(HANDLER_DIR).as_posix()] = path
    return files


def _manifest(raw: bytes, version: str) -> bytes:
    manifest = json.loads(raw)
    manifest[0]["name"] = protocol.HANDLER_NAME
    manifest[0]["version"] = version
    return (json.dumps(manifest, indent=4, sort_keys=True) + "\n").encode("utf-8")
