"""The lab's Debian package mirror: a tiny apt repository the fabric serves over HTTP.

Azure images point apt at a Debian mirror inside Azure, so "install the latest agent
from the distribution repository" (FACTS.md §1 cause 2) works on a VM that has no other
way out. A lab guest sits on an internal network, so the fabric plays that mirror:
guests' ``/etc/apt/sources.list`` names :data:`MIRROR_HOST` (dnsmasq answers it with
the fabric's address), and this module serves the repository on :data:`MIRROR_PORT`.

What it holds: the real ``.deb`` files of the packages a runbook installs (bookworm's
``waagent``, fetched with ``apt-get download`` from the machine's archive when the
fabric image is built), laid out as a Debian mirror (``pool/main/<p>/<source>/``) with
``dists/<suite>/main/binary-amd64/Packages`` and a ``Release`` that lists their hashes.
apt checks every ``.deb`` against those hashes. The one difference from Debian's own
mirror: the ``Release`` file is not signed (no archive key exists in the lab), so the
guests' source line carries ``[trusted=yes]``; every scenario's fidelity note says so.

``python3 -m lab.platform.package_mirror build`` writes the repository (the fabric image
runs it once); :class:`MirrorApp` serves it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import logging
import shutil
import sys
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from werkzeug.exceptions import NotFound
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

MIRROR_HOST = "debian-mirror.snaplab.internal"
MIRROR_PORT = 8081
# Everything below this folder is served; the apt source URL ends in /debian.
MIRROR_ROOT = Path("/opt/snaplab/mirror")
ARCHIVE_DIR = "debian"
COMPONENT = "main"
ARCHITECTURE = "amd64"


def source_line(suite: str, host: str = MIRROR_HOST, port: int = MIRROR_PORT) -> str:
    """The one-line apt source a lab guest uses for ``suite``."""
    return f"deb [trusted=yes] http://{host}:{port}/{ARCHIVE_DIR} {suite} {COMPONENT}"


# ---------------------------------------------------------------- reading a .deb


def deb_control(data: bytes) -> str:
    """The ``control`` file of a ``.deb`` (an ``ar`` archive holding ``control.tar.*``)."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(data):
        header = data[offset : offset + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as exc:
            raise ValueError("corrupt ar member header") from exc
        start = offset + 60
        if name.startswith("control.tar"):
            return _control_from_tar(data[start : start + size], name)
        offset = start + size + (size % 2)
    raise ValueError("no control.tar member in the package")


def _control_from_tar(member: bytes, name: str) -> str:
    try:
        with tarfile.open(fileobj=io.BytesIO(member), mode="r:*") as tar:
            for info in tar.getmembers():
                if info.name.lstrip("./") == "control" and info.isfile():
                    extracted = tar.extractfile(info)
                    if extracted is not None:
                        return extracted.read().decode("utf-8")
    except (tarfile.TarError, EOFError) as exc:
        raise ValueError(f"cannot read {name}: {exc}") from exc
    raise ValueError(f"{name} has no control file")


def control_fields(control: str) -> dict[str, str]:
    """The fields of a control stanza, continuation lines kept with their field."""
    fields: dict[str, str] = {}
    key = ""
    for line in control.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    return fields


# ---------------------------------------------------------------- the repository


@dataclass(frozen=True)
class PoolEntry:
    """One ``.deb`` in the pool: its control stanza and where it lives (repo-relative)."""

    control: str
    filename: str
    size: int
    md5: str
    sha256: str

    @property
    def package(self) -> str:
        return control_fields(self.control)["Package"]

    def stanza(self) -> str:
        """The control fields as packaged, then what the mirror adds (Debian's order)."""
        return (
            f"{self.control.strip()}\nFilename: {self.filename}\nSize: {self.size}\n"
            f"MD5sum: {self.md5}\nSHA256: {self.sha256}\n"
        )


def pool_path(fields: dict[str, str], deb_name: str) -> str:
    """Debian's pool layout: ``pool/main/<w>/<waagent>/`` (``lib`` + one letter for libs)."""
    source = fields.get("Source", fields["Package"]).split(" ", 1)[0]
    prefix = source[:4] if source.startswith("lib") else source[:1]
    return f"pool/{COMPONENT}/{prefix}/{source}/{deb_name}"


def add_to_pool(root: Path, deb: Path) -> PoolEntry:
    """Move ``deb`` into the pool below ``root`` and describe it."""
    data = deb.read_bytes()
    control = deb_control(data)
    fields = control_fields(control)
    if "Package" not in fields or "Version" not in fields:
        raise ValueError(f"{deb.name}: control file without Package/Version")
    relative = pool_path(fields, deb.name)
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if deb.resolve() != target.resolve():
        shutil.move(str(deb), target)
    return PoolEntry(
        control=control,
        filename=relative,
        size=len(data),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def packages_index(entries: Iterable[PoolEntry]) -> str:
    """A ``Packages`` file: one stanza per package, sorted, blank-line separated."""
    ordered = sorted(entries, key=lambda e: (e.package, e.filename))
    return "\n".join(entry.stanza() for entry in ordered)


def release_file(suite: str, indexes: dict[str, bytes], date: datetime) -> str:
    """The suite's ``Release``: what it is and the hashes of its index files."""
    lines = [
        "Origin: snaplab",
        "Label: snaplab lab mirror",
        f"Suite: {suite}",
        f"Codename: {suite}",
        f"Date: {format_datetime(date.astimezone(UTC), usegmt=True)}",
        f"Architectures: {ARCHITECTURE}",
        f"Components: {COMPONENT}",
        "Description: the packages a snaplab runbook installs, as the lab's Debian mirror",
    ]
    for title, algorithm in (("MD5Sum", "md5"), ("SHA256", "sha256")):
        lines.append(f"{title}:")
        for path, data in sorted(indexes.items()):
            digest = hashlib.new(algorithm, data, usedforsecurity=False).hexdigest()
            lines.append(f" {digest} {len(data):>16} {path}")
    return "\n".join(lines) + "\n"


def write_suite(root: Path, suite: str, entries: Sequence[PoolEntry], date: datetime) -> None:
    """Write ``dists/<suite>/``: Packages, Packages.gz and Release."""
    text = packages_index(entries).encode()
    binary = f"{COMPONENT}/binary-{ARCHITECTURE}"
    indexes = {
        f"{binary}/Packages": text,
        f"{binary}/Packages.gz": gzip.compress(text, mtime=0),
    }
    dists = root / "dists" / suite
    for path, data in indexes.items():
        (dists / path).parent.mkdir(parents=True, exist_ok=True)
        (dists / path).write_bytes(data)
    (dists / "Release").write_text(release_file(suite, indexes, date))


def build(root: Path, incoming: Path, suites: Sequence[str], date: datetime) -> dict[str, int]:
    """Move ``incoming/<suite>/*.deb`` into the pool and index every suite.

    A suite without an incoming folder gets an empty index, so a guest of that suite
    can still ``apt-get update`` against the lab mirror. Returns packages per suite.
    """
    counts: dict[str, int] = {}
    for suite in suites:
        debs = sorted((incoming / suite).glob("*.deb")) if (incoming / suite).is_dir() else []
        entries = [add_to_pool(root, deb) for deb in debs]
        write_suite(root, suite, entries, date)
        counts[suite] = len(entries)
    return counts


# ---------------------------------------------------------------- serving it


class MirrorApp:
    """WSGI app: the files below ``root``, read-only, as any HTTP mirror serves them.

    ``send_from_directory`` refuses paths that leave ``root`` and answers HEAD,
    conditional and range requests, which apt uses.
    """

    def __init__(self, root: Path = MIRROR_ROOT) -> None:
        self.root = root

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response: Response
        if request.method not in ("GET", "HEAD"):
            response = Response("method not allowed\n", status=405, headers={"Allow": "GET"})
        else:
            try:
                response = send_from_directory(
                    self.root, request.path.lstrip("/"), environ, max_age=0
                )
            except NotFound:
                response = Response(f"{request.path}: not on this mirror\n", status=404)
        return response(environ, start_response)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="package_mirror", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", help="move incoming .debs into the pool and index them")
    make.add_argument("--root", type=Path, default=MIRROR_ROOT / ARCHIVE_DIR)
    make.add_argument("--incoming", type=Path, required=True)
    make.add_argument("--suite", action="append", required=True, help="repeat per suite")
    args = parser.parse_args(argv)
    try:
        counts = build(args.root, args.incoming, args.suite, datetime.now(UTC))
    except (OSError, ValueError) as exc:
        print(f"package_mirror: {exc}", file=sys.stderr)
        return 1
    for suite, count in counts.items():
        print(f"package_mirror: {suite}: {count} package(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
