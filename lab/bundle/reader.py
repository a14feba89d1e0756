"""Open a log bundle (a zip) safely and give its members by path, as text with line numbers.

A bundle comes from a customer, so nothing in it is trusted: the zip may be truncated,
not a zip at all, hold binary junk, huge members, a zip bomb, or names that climb out of
the archive (``../``, absolute paths). Every such failure is one :class:`BadInput` line
naming the bundle (and the member); nothing is ever extracted to disk.

Caps follow the agent's own log collector: it truncates a file over 30 MB to its newest
30 MB and stops at 150 MB in total. A member over 30 MB is kept the same way (its tail,
recorded in :attr:`Bundle.truncated`); a bundle over 150 MB uncompressed is refused.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path, PurePosixPath

from lab.errors import BadInput

MEMBER_CAP = 30 * 1024 * 1024
"""Bytes kept of one member: the agent truncates files over 30 MB to their tail."""

TOTAL_CAP = 150 * 1024 * 1024
"""Bytes of all members together: the agent's uncompressed archive limit."""

MAX_MEMBERS = 20_000
"""More entries than any real bundle holds; a zip with more is refused."""

BOMB_RATIO = 200
"""Declared size over compressed size above which a large member counts as a zip bomb.

Agent logs compress 10-30 times; deflate cannot exceed ~1030 and bombs sit near that.
"""

BOMB_MIN_SIZE = 1024 * 1024
"""Members smaller than this are never judged by ratio (a small repetitive file is fine)."""

_CHUNK = 1024 * 1024

TRUNCATED_PREFIX = "truncated_"
"""How the agent names the tail it kept of a file over 30 MB: ``truncated_`` and the
guest's absolute path with ``/`` as ``_`` (``truncated__var_log_syslog``: the leading
slash makes the double underscore), at the bundle's root."""


def _truncated_names(path: str) -> tuple[str, ...]:
    """The names the agent's truncated copy of ``path`` may carry (with the absolute
    path's underscore, and without it as a hand-made bundle may)."""
    flat = path.replace("/", "_")
    return (f"{TRUNCATED_PREFIX}_{flat}", f"{TRUNCATED_PREFIX}{flat}")


@dataclass(frozen=True)
class Bundle:
    """The members of one bundle, read into memory within the caps.

    ``path`` is the zip on disk (for messages); ``members`` maps each member's path inside
    the bundle (POSIX, no leading slash, any wrapping top folder removed) to its bytes.
    """

    path: Path
    members: dict[str, bytes]
    truncated: frozenset[str] = frozenset()
    mtimes: Mapping[str, datetime] = field(default_factory=dict)
    """Each member's modification time as the zip records it (the file's mtime on the
    guest, read as UTC: Azure's Linux images keep the clock in UTC)."""

    def mtime(self, path: str) -> datetime | None:
        member = self.resolve(path)
        return None if member is None else self.mtimes.get(member)

    def files(self) -> list[str]:
        """Every member's path, sorted."""
        return sorted(self.members)

    def resolve(self, path: str) -> str | None:
        """The member holding the guest file ``path``: itself, or the agent's truncated copy
        of it (``var/log/syslog`` over 30 MB is archived as ``truncated__var_log_syslog``)."""
        if path in self.members:
            return path
        for alias in _truncated_names(path):
            if alias in self.members:
                return alias
        return None

    def has(self, path: str) -> bool:
        return self.resolve(path) is not None

    def read_bytes(self, path: str) -> bytes | None:
        """A member's bytes, or None when the bundle does not hold it."""
        member = self.resolve(path)
        return None if member is None else self.members[member]

    def read_text(self, path: str) -> str | None:
        """A member as text (UTF-8, undecodable bytes replaced, NULs dropped), or None."""
        data = self.read_bytes(path)
        if data is None:
            return None
        return decode_text(data)

    def lines(self, path: str) -> list[tuple[int, str]]:
        """A member's lines numbered from 1 (empty when the member is missing)."""
        text = self.read_text(path)
        if text is None:
            return []
        return list(enumerate(text.splitlines(), start=1))

    def glob(self, pattern: str) -> list[str]:
        """Members matching a glob: ``*`` and ``?`` stay within one path segment, ``**``
        crosses segments (``var/log/azure/*/*``, ``var/lib/waagent/**/*.status``)."""
        regex = _glob_regex(pattern)
        truncated = [_glob_regex(alias) for alias in _truncated_names(pattern)]
        return [
            name
            for name in self.files()
            if regex.fullmatch(name) or any(alias.fullmatch(name) for alias in truncated)
        ]

    def describe(self, member: str | None = None) -> str:
        """How messages name this bundle (and a member of it)."""
        return f"{self.path.name}: {member}" if member else self.path.name


def decode_text(data: bytes) -> str:
    """Text from bytes that may be partly binary: logs keep their lines, junk is replaced."""
    return data.decode("utf-8", errors="replace").replace("\x00", "")


@lru_cache(maxsize=128)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def open_bundle(path: Path) -> Bundle:
    """Read a bundle zip into memory, refusing anything unsafe with one line."""
    name = path.name
    if not path.exists():
        raise BadInput(f"{path}: no such bundle")
    if not path.is_file():
        raise BadInput(f"{path}: not a file")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise BadInput(f"{name}: not a zip file or a truncated one ({exc})") from exc
    except OSError as exc:
        raise BadInput(f"{name}: cannot be read ({exc.strerror or exc})") from exc
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        if len(infos) > MAX_MEMBERS:
            raise BadInput(f"{name}: {len(infos)} members, more than a log bundle holds")
        names = [_safe_name(name, info.filename) for info in infos]
        prefix = _wrapping_folder(names)
        members: dict[str, bytes] = {}
        truncated: set[str] = set()
        mtimes: dict[str, datetime] = {}
        total = 0
        for info, member in zip(infos, names, strict=True):
            _refuse_bomb(name, member, info)
            data, cut = _read_member(archive, name, member, info)
            total += len(data)
            if total > TOTAL_CAP:
                raise BadInput(
                    f"{name}: more than {TOTAL_CAP // (1024 * 1024)} MB uncompressed "
                    "(the agent's own cap); not a log bundle"
                )
            key = member[len(prefix) :]
            if key in members:
                raise BadInput(f"{name}: {member}: the bundle holds this member twice")
            members[key] = data
            mtimes[key] = _zip_time(info)
            if cut:
                truncated.add(key)
    if not members:
        raise BadInput(f"{name}: the zip holds no files")
    return Bundle(path=path, members=members, truncated=frozenset(truncated), mtimes=mtimes)


def _safe_name(bundle: str, raw: str) -> str:
    """A member name as a relative POSIX path, or one line refusing it."""
    if "\\" in raw or "\x00" in raw:
        raise BadInput(f"{bundle}: {raw!r}: member name with a backslash or NUL refused")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise BadInput(f"{bundle}: {raw}: absolute member path refused")
    parts = PurePosixPath(raw).parts
    if ".." in parts:
        raise BadInput(f"{bundle}: {raw}: member path with '..' refused")
    clean = "/".join(part for part in parts if part not in ("", "."))
    if not clean:
        raise BadInput(f"{bundle}: {raw!r}: empty member name refused")
    return clean


def _wrapping_folder(names: list[str]) -> str:
    """A single top folder wrapping the whole bundle (someone re-zipped the extracted
    folder, ``logs/var/log/...``), returned with its slash so it can be removed; ``""``
    when the members already start at the guest's root."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) != 1 or not all("/" in name for name in names):
        return ""
    top = next(iter(tops))
    if top in ("var", "etc", "run", "usr", "opt", "home", "proc", "sys", "root", "lib"):
        return ""
    return top + "/"


def _refuse_bomb(bundle: str, member: str, info: zipfile.ZipInfo) -> None:
    size, packed = info.file_size, max(info.compress_size, 1)
    if size >= BOMB_MIN_SIZE and size / packed > BOMB_RATIO:
        raise BadInput(
            f"{bundle}: {member}: compression ratio {size // packed}:1 refused as a zip bomb"
        )


def _read_member(
    archive: zipfile.ZipFile, bundle: str, member: str, info: zipfile.ZipInfo
) -> tuple[bytes, bool]:
    """A member's bytes, counted as they stream (declared sizes may lie); over the member
    cap only the newest :data:`MEMBER_CAP` bytes are kept, as the agent keeps them."""
    kept = bytearray()
    seen = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                seen += len(chunk)
                if seen > TOTAL_CAP:
                    raise BadInput(
                        f"{bundle}: {member}: expands past {TOTAL_CAP // (1024 * 1024)} MB; "
                        "refused as a zip bomb"
                    )
                kept += chunk
                if len(kept) > MEMBER_CAP:
                    del kept[: len(kept) - MEMBER_CAP]
    except BadInput:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
        raise BadInput(f"{bundle}: {member}: unreadable member ({exc})") from exc
    except RuntimeError as exc:  # encrypted members
        raise BadInput(f"{bundle}: {member}: {exc}") from exc
    return bytes(kept), seen > MEMBER_CAP


def _zip_time(info: zipfile.ZipInfo) -> datetime:
    try:
        return datetime(*info.date_time, tzinfo=UTC)
    except ValueError:  # a hand-made zip may carry an impossible date
        return datetime(1980, 1, 1, tzinfo=UTC)
