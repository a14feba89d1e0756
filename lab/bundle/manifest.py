"""What the agent's log collector puts in a bundle, and how: the manifests and the zip layout.

Facts from WALinuxAgent's log collector (``azurelinuxagent/common/logcollector.py`` in
2.7.x, ``azurelinuxagent/ga/logcollector.py`` in 2.12, with ``logcollector_manifests.py``),
checked against the real ``waagent -collect-logs`` of the lab's 2.7.3.0 and 2.12.0.2:

* a manifest is a list of ``ll,<dir>`` (list the folder into results.txt), ``echo,<text>``
  and ``copy,<glob>`` lines; ``$LIB_DIR`` is ``/var/lib/waagent``, ``$LOG_DIR``
  ``/var/log/azure``, ``$AGENT_LOG`` ``/var/log/waagent.log``;
* a member's name is the guest path without its leading ``/``; a file over 30 MB is kept as
  its newest 30 MB under ``truncated__<path with / as _>`` (the agent's own spelling: a
  double underscore), a compressed file over 30 MB is left out;
* files are added in priority order (the "must collect" list first) until 150 MB
  (uncompressed) is reached; ``results.txt`` (the collector's log) goes in last.

2.2.47 has no ``-collect-logs``: :func:`build_bundle` makes the same layout from a VM's
files (the oldest manifest here, whose file names match 2.2.x's ``GoalState.N.xml`` era).
"""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal, cast

LIB_DIR = "/var/lib/waagent"
LOG_DIR = "/var/log/azure"
AGENT_LOG = "/var/log/waagent.log"
COLLECTOR_DIR = f"{LIB_DIR}/logcollector"
ARCHIVE_PATH = f"{COLLECTOR_DIR}/logs.zip"
RESULTS_PATH = f"{COLLECTOR_DIR}/results.txt"
RESULTS_MEMBER = "results.txt"

FILE_LIMIT = 30 * 1024 * 1024
TOTAL_LIMIT = 150 * 1024 * 1024
TRUNCATED_PREFIX = "truncated_"
COMPRESSED_SUFFIXES = (".gz", ".zip", ".xz")

Kind = Literal["ll", "echo", "copy"]


@dataclass(frozen=True)
class Step:
    """One manifest line."""

    kind: Kind
    value: str


def _steps(text: str) -> tuple[Step, ...]:
    out = []
    for line in text.strip().splitlines():
        kind, _, value = line.partition(" ")
        if kind not in ("ll", "echo", "copy"):
            raise ValueError(f"manifest line {line!r}: unknown kind")
        value = value.replace("$LIB", LIB_DIR).replace("$LOG", LOG_DIR)
        out.append(Step(cast(Kind, kind), value))
    return tuple(out)


# The paths of 2.7.3.0's manifests (the first generation with -collect-logs), written here
# as "kind value" lines; $LIB and $LOG stand for the agent's two folders.
NORMAL = _steps(
    """
echo ### Probing Directories ###
ll /var/log
ll $LIB
echo ### Gathering Configuration Files ###
copy /etc/*-release
copy /etc/HOSTNAME
copy /etc/hostname
copy /etc/waagent.conf
echo ### Gathering Log Files ###
copy /var/log/waagent.log*
copy /var/log/dmesg*
copy /var/log/syslog*
copy /var/log/auth*
copy $LOG/*/*
copy $LOG/*/*/*
copy $LOG/custom-script/handler.log
echo ### Gathering Extension Files ###
copy $LIB/*.xml
copy $LIB/VmSettings.*.json
copy $LIB/waagent_status.*.json
copy $LIB/*/status/*.status
copy $LIB/*/config/*.settings
copy $LIB/*/config/HandlerState
copy $LIB/*/config/HandlerStatus
copy $LIB/*.agentsManifest
copy $LIB/error.json
copy $LIB/Incarnation
copy $LIB/history/*.zip
"""
)

FULL = _steps(
    """
echo ### Probing Directories ###
ll /var/log
ll $LIB
ll /etc/udev/rules.d
echo ### Gathering Configuration Files ###
copy $LIB/provisioned
copy /etc/fstab
copy /etc/ssh/sshd_config
copy /boot/grub*/grub.c*
copy /boot/grub*/menu.lst
copy /etc/*-release
copy /etc/HOSTNAME
copy /etc/hostname
copy /etc/network/interfaces
copy /etc/network/interfaces.d/*.cfg
copy /etc/netplan/50-cloud-init.yaml
copy /etc/nsswitch.conf
copy /etc/resolv.conf
copy /run/systemd/resolve/stub-resolv.conf
copy /run/resolvconf/resolv.conf
copy /etc/sysconfig/iptables
copy /etc/sysconfig/network
copy /etc/sysconfig/network/ifcfg-eth*
copy /etc/sysconfig/network/routes
copy /etc/sysconfig/network-scripts/ifcfg-eth*
copy /etc/sysconfig/network-scripts/route-eth*
copy /etc/sysconfig/SuSEfirewall2
copy /etc/ufw/ufw.conf
copy /etc/waagent.conf
copy /var/lib/dhcp/dhclient.eth0.leases
copy /var/lib/dhclient/dhclient-eth0.leases
copy /var/lib/wicked/lease-eth0-dhcp-ipv4.xml
echo ### Gathering Log Files ###
copy /var/log/waagent.log*
copy /var/log/syslog*
copy /var/log/rsyslog*
copy /var/log/messages*
copy /var/log/kern*
copy /var/log/dmesg*
copy /var/log/dpkg*
copy /var/log/yum*
copy /var/log/cloud-init*
copy /var/log/boot*
copy /var/log/auth*
copy /var/log/secure*
copy $LOG/*/*
copy $LOG/*/*/*
copy $LOG/custom-script/handler.log
copy $LOG/run-command/handler.log
echo ### Gathering Extension Files ###
copy $LIB/ExtensionsConfig.*.xml
copy $LIB/*/status/*.status
copy $LIB/*/config/*.settings
copy $LIB/*/config/HandlerState
copy $LIB/*/config/HandlerStatus
copy $LIB/GoalState.*.xml
copy $LIB/HostingEnvironmentConfig.xml
copy $LIB/*.manifest.xml
copy $LIB/SharedConfig.xml
copy $LIB/ManagedIdentity-*.json
copy $LIB/*/error.json
copy $LIB/Incarnation
copy $LIB/waagent_status.*.json
copy $LIB/history/*.zip
"""
)

# Files collected first when the 150 MB cap bites (the agent's "must collect" list, in order).
MUST_COLLECT = (
    AGENT_LOG,
    f"{LIB_DIR}/GoalState.*.xml",
    f"{LIB_DIR}/ExtensionsConfig.*.xml",
    f"{LIB_DIR}/HostingEnvironmentConfig.*.xml",
    f"{LIB_DIR}/SharedConfig.*.xml",
    f"{LIB_DIR}/*manifest.xml",
    f"{LIB_DIR}/waagent_status.*.json",
    f"{LIB_DIR}/history/*.zip",
    f"{LOG_DIR}/*/*",
    f"{LOG_DIR}/*/*/*",
    f"{AGENT_LOG}.*",
)


def manifest(full: bool) -> tuple[Step, ...]:
    return FULL if full else NORMAL


@dataclass(frozen=True)
class Entry:
    """One file or folder of the guest's disk, as Docker's archive of it shows it."""

    path: str  # absolute guest path
    is_dir: bool
    size: int
    mode: int
    mtime: float
    data: bytes | None = None  # regular files that a manifest copies


@dataclass
class Tree:
    """The parts of a guest's filesystem a manifest looks at, keyed by absolute path."""

    entries: dict[str, Entry] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        self.entries[entry.path] = entry

    def glob(self, pattern: str) -> list[str]:
        """Regular files matching ``pattern`` (``*`` within one segment), sorted."""
        return sorted(
            path
            for path, entry in self.entries.items()
            if not entry.is_dir and entry.data is not None and PurePosixPath(path).match(pattern)
        )

    def children(self, folder: str) -> list[Entry]:
        parent = PurePosixPath(folder)
        return sorted(
            (e for e in self.entries.values() if PurePosixPath(e.path).parent == parent),
            key=lambda e: e.path,
        )

    def has_dir(self, folder: str) -> bool:
        entry = self.entries.get(folder)
        return entry is not None and entry.is_dir


def copy_patterns(steps: Iterable[Step]) -> tuple[str, ...]:
    return tuple(step.value for step in steps if step.kind == "copy")


def wanted(path: str, patterns: Iterable[str]) -> bool:
    """Whether a manifest (or the must-collect list) would copy the file at ``path``."""
    pure = PurePosixPath(path)
    return any(pure.match(pattern) for pattern in patterns)


def archive_name(path: str, truncated: bool = False) -> str:
    """The member name the agent gives a guest file (and its truncated copy)."""
    if truncated:
        return TRUNCATED_PREFIX + path.replace("/", "_")
    return path.lstrip("/")


class _Results:
    """results.txt: the collector's log, one ``<time> <LEVEL> <message>`` line per record."""

    def __init__(self, now: datetime) -> None:
        self.stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.lines: list[str] = []

    def log(self, message: str, level: str = "INFO") -> None:
        self.lines.append(f"{self.stamp} {level} {message}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _listing(tree: Tree, folder: str) -> str:
    rows = [
        f"{stat.filemode(entry.mode)} {entry.size:>10} "
        f"{datetime.fromtimestamp(entry.mtime, UTC):%Y-%m-%d %H:%M} "
        f"{PurePosixPath(entry.path).name}{'/' if entry.is_dir else ''}"
        for entry in tree.children(folder)
    ]
    return "\n".join(rows)


@dataclass(frozen=True)
class Built:
    """A bundle made by snaplab: the zip's bytes and the text of its results.txt."""

    data: bytes
    results: str
    members: tuple[str, ...]


def build_bundle(
    tree: Tree, full: bool, notes: Iterable[str], now: datetime | None = None
) -> Built:
    """The bundle the agent's collector would make of ``tree``, with ``notes`` (how it was
    made, and why not by the agent) at the top of results.txt."""
    results = _Results(now or datetime.now(UTC))
    for note in notes:
        results.log(note)
    results.log(f"Using log collection mode {'full' if full else 'normal'}")
    chosen: set[str] = set()
    for step in manifest(full):
        if step.kind == "echo":
            results.log(step.value)
        elif step.kind == "ll":
            if tree.has_dir(step.value):
                results.log(
                    f"Listing of [{step.value}] (from the disk):\n{_listing(tree, step.value)}"
                )
            else:
                results.log(f"Listing of [{step.value}]: no such folder", "ERROR")
        else:
            for path in tree.glob(step.value):
                results.log(path)
                chosen.add(path)
    members, total = _select(tree, chosen, results)
    results.log(f"Uncompressed archive size is {total} b")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name, data in members:
            info = zipfile.ZipInfo(name, _zip_time(tree.entries[path].mtime))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (tree.entries[path].mode & 0xFFFF) << 16
            archive.writestr(info, data)
        text = results.text()
        archive.writestr(RESULTS_MEMBER, text)
    names = (*(name for _, name, _ in members), RESULTS_MEMBER)
    return Built(data=buffer.getvalue(), results=text, members=names)


def _priority(path: str) -> int:
    for index, pattern in enumerate(MUST_COLLECT):
        if PurePosixPath(path).match(pattern):
            return index
    return len(MUST_COLLECT)


def _select(
    tree: Tree, chosen: set[str], results: _Results
) -> tuple[list[tuple[str, str, bytes]], int]:
    """Files in priority order within the 150 MB cap; a file over 30 MB as its tail."""
    out: list[tuple[str, str, bytes]] = []
    total = 0
    for path in sorted(chosen, key=lambda p: (_priority(p), p)):
        data = tree.entries[path].data or b""
        size = min(len(data), FILE_LIMIT)
        if total + size > TOTAL_LIMIT:
            results.log("Archive too big, done with adding files.", "WARNING")
            break
        if len(data) <= FILE_LIMIT:
            out.append((path, archive_name(path), data))
            results.log(f"Adding file {path}, size {size} b")
        elif path.endswith(COMPRESSED_SUFFIXES):
            results.log(f"Discarding large binary file {path}", "WARNING")
        else:
            out.append((path, archive_name(path, truncated=True), data[-FILE_LIMIT:]))
            results.log(f"Adding truncated file {path}, size {size} b")
        total += size
    return out, total


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    moment = datetime.fromtimestamp(max(mtime, 315532800), UTC)  # zip cannot say before 1980
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def roots(patterns: Iterable[str]) -> tuple[str, ...]:
    """The fewest folders whose archives hold every file the patterns can match."""
    found: set[str] = set()
    for pattern in patterns:
        parts = PurePosixPath(pattern).parts
        literal = []
        for part in parts[:-1]:
            if any(ch in part for ch in "*?["):
                break
            literal.append(part)
        found.add(str(PurePosixPath(*literal)) if literal else "/")
    ordered = sorted(found, key=len)
    kept: list[str] = []
    for folder in ordered:
        if not any(folder == k or folder.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(folder)
    return tuple(sorted(kept))
