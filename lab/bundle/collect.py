"""``snaplab collect-logs``: the agent's log bundle of a lab VM, as a customer would send it.

Three ways, tried in this order, and the result says which one made the bundle:

* ``agent``: the real agent's ``waagent -collect-logs [-full]`` in the guest (2.7.3.0 and
  2.12.0.2 have it; run by hand it skips the cgroup check the agent's own periodic
  collector makes, so it works in the lab's systemd containers as on a VM). The bundle is
  the agent's ``/var/lib/waagent/logcollector/logs.zip``, untouched. 2.12 fetches a goal
  state first: cut off from the WireServer, its command failed after about 90 s (measured
  2026-12-07), and the bundle is made the next way.
* ``snaplab``: the agent cannot (2.2.47 has no ``-collect-logs`` and prints its usage; or
  the command failed or ran past :data:`AGENT_TIMEOUT`): the same files and layout are made
  from the VM's files (:func:`lab.bundle.manifest.build_bundle`), results.txt saying why,
  and left where the agent leaves them (``logs.zip`` and ``results.txt`` in
  ``/var/lib/waagent/logcollector/``).
* ``rescue``: the VM is shut down inside (its container has exited), so no command can run
  in it; its disk is read as a rescue VM would read it (Docker's archive of a stopped
  container) and nothing is written to it.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from lab.bundle.manifest import (
    ARCHIVE_PATH,
    COLLECTOR_DIR,
    MUST_COLLECT,
    RESULTS_PATH,
    Entry,
    Tree,
    build_bundle,
    copy_patterns,
    manifest,
    roots,
    wanted,
)
from lab.errors import PlatformError, UnknownVm
from lab.provision import lab as labs

Method = Literal["agent", "snaplab", "rescue"]

AGENT_TIMEOUT = 120
"""Seconds the agent's collector may take (2.12 fetches a goal state first, and an agent
cut off from the WireServer retries); past it, snaplab makes the bundle itself."""

SUCCESS_TEXT = "Log collection successfully completed"
# 2.12 logs to the console with the agent's prefix: "<time> INFO MainThread LogCollector ".
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\s+\w+\s+\S+\s+(?:LogCollector\s+)?")
LINK_HOPS = 8
RUNNING = "running"


@dataclass(frozen=True)
class Collected:
    """A bundle and how it was made."""

    vm: str
    agent_version: str
    method: Method
    reason: str  # why not the agent ("" when the agent made it)
    data: bytes
    seconds: float

    def describe(self) -> str:
        if self.method == "agent":
            return "made by the agent's own `waagent -collect-logs`"
        if self.method == "rescue":
            return f"made by snaplab from the VM's disk: {self.reason}"
        return f"made by snaplab (same files and layout): {self.reason}"


def collect_logs(client: docker.DockerClient, lab: str, vm: str, full: bool = False) -> Collected:
    """The log bundle of ``vm`` in ``lab`` (see the module's docstring for the three ways)."""
    started = time.monotonic()
    roster = labs.roster_of(client, lab)
    guest = roster.guest_by_name(vm)
    if guest is None:
        known = ", ".join(g.name for g in roster.guests)
        raise UnknownVm(f"lab {lab!r} has no VM named {vm!r} (it has: {known})")
    container = labs.guest_container(client, lab, vm)
    container.reload()
    version = guest.agent_version
    if container.status != RUNNING:
        reason = (
            f"the VM is not running (container {container.status}): no command can run in "
            "it, so its disk was read as a rescue VM would read it"
        )
        data = _build(container, full, [_made_note(version), reason])
        return Collected(vm, version, "rescue", reason, data, time.monotonic() - started)
    done, reason = _run_agent(container, version, full)
    if done:
        data = _read_file(container, ARCHIVE_PATH)
        return Collected(vm, version, "agent", "", data, time.monotonic() - started)
    data = _build(container, full, [_made_note(version), reason], leave_in_guest=True)
    return Collected(vm, version, "snaplab", reason, data, time.monotonic() - started)


def _made_note(version: str) -> str:
    return (
        f"Bundle made by snaplab, not by the agent (WALinuxAgent-{version}): the files and "
        "layout of `waagent -collect-logs`"
    )


def _run_agent(container: Container, version: str, full: bool) -> tuple[bool, str]:
    """Run the agent's collector; (True, "") when it made logs.zip, else (False, why not)."""
    argv = ["timeout", str(AGENT_TIMEOUT), "waagent", "-collect-logs", *(["-full"] if full else [])]
    try:
        code, output = container.exec_run(argv)
    except APIError as exc:
        return False, f"`waagent -collect-logs` could not be started: {exc.explanation or exc}"
    text = (output or b"").decode("utf-8", errors="replace")
    if code == 0 and SUCCESS_TEXT in text:
        return True, ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any(line.startswith("usage:") for line in lines) and "-collect-logs" not in text:
        return False, f"WALinuxAgent-{version} has no -collect-logs (it printed its usage)"
    if code == 124:
        return False, f"`waagent -collect-logs` did not finish within {AGENT_TIMEOUT} s"
    failed = [line for line in lines if "unsuccessfully" in line or " ERROR " in line]
    last = (failed or lines or ["no output"])[-1]
    last = _STAMP.sub("", last)
    return False, f"`waagent -collect-logs` failed (exit code {code}): {last}"


def _build(
    container: Container, full: bool, notes: list[str], leave_in_guest: bool = False
) -> bytes:
    steps = manifest(full)
    patterns = (*copy_patterns(steps), *MUST_COLLECT)
    listed = tuple(f"{step.value}/*" for step in steps if step.kind == "ll")
    tree = read_tree(container, roots((*patterns, *listed)), patterns)
    built = build_bundle(tree, full, notes)
    if leave_in_guest:
        _leave(container, built.data, built.results)
    return built.data


def read_tree(container: Container, folders: Iterable[str], patterns: tuple[str, ...]) -> Tree:
    """The entries under ``folders`` (contents only of files ``patterns`` match), read
    through Docker's archive API, which works on a stopped container as on a running one.
    A matched symbolic link is followed (the agent's collector copies what it points at)."""
    tree = Tree()
    links: dict[str, str] = {}
    for folder in folders:
        for entry, target in _archive_entries(container, folder, patterns):
            tree.add(entry)
            if target is not None:
                links[entry.path] = target
    for path, target in links.items():
        resolved = _follow(container, path, target)
        if resolved is not None:
            tree.add(resolved)
    return tree


def _archive_entries(
    container: Container, folder: str, patterns: tuple[str, ...]
) -> Iterator[tuple[Entry, str | None]]:
    try:
        stream, _ = container.client.api.get_archive(container.id, folder)
    except NotFound:
        return
    except APIError as exc:
        raise PlatformError(f"{container.name}: cannot read {folder}: {exc.explanation}") from exc
    base = str(PurePosixPath(folder).parent)
    with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:
        for member in tar:
            path = posixpath.normpath(posixpath.join(base, member.name))
            target = None
            data = None
            if member.isfile() and wanted(path, patterns):
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
            elif member.issym() and wanted(path, patterns):
                target = member.linkname
            entry = Entry(path, member.isdir(), member.size, member.mode, member.mtime, data)
            yield entry, target


def _follow(container: Container, path: str, target: str) -> Entry | None:
    current, link = path, target
    for _ in range(LINK_HOPS):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(current), link))
        try:
            stream, _ = container.client.api.get_archive(container.id, resolved)
        except (NotFound, APIError):
            return None
        with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:
            member = tar.next()
            if member is None:
                return None
            if member.issym():
                current, link = resolved, member.linkname
                continue
            if not member.isfile():
                return None
            handle = tar.extractfile(member)
            data = handle.read() if handle is not None else b""
            return Entry(path, False, len(data), member.mode, member.mtime, data)
    return None


def _read_file(container: Container, path: str) -> bytes:
    try:
        stream, _ = container.client.api.get_archive(container.id, path)
        with tarfile.open(fileobj=_ChunkReader(stream), mode="r|") as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member is not None else None
            if handle is None:
                raise PlatformError(f"{container.name}: {path} is not a file")
            return handle.read()
    except (NotFound, APIError) as exc:
        raise PlatformError(f"{container.name}: cannot read {path}") from exc


def _leave(container: Container, data: bytes, results: str) -> None:
    """Put logs.zip and results.txt where the agent's collector leaves them, touching no
    existing folder's owner or mode (only ``logcollector/`` is created if missing)."""
    folder = PurePosixPath(COLLECTOR_DIR)
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(folder.name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, now
        tar.addfile(info)
        for path, content in ((ARCHIVE_PATH, data), (RESULTS_PATH, results.encode("utf-8"))):
            info = tarfile.TarInfo(f"{folder.name}/{PurePosixPath(path).name}")
            info.size, info.mode, info.mtime = len(content), 0o644, now
            tar.addfile(info, io.BytesIO(content))
    try:
        container.client.api.put_archive(container.id, str(folder.parent), buffer.getvalue())
    except APIError as exc:
        raise PlatformError(f"{container.name}: cannot write {COLLECTOR_DIR}") from exc


class _ChunkReader(io.RawIOBase):
    """A readable file over Docker's archive stream (an iterator of byte chunks)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size
