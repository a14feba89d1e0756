"""One root shell in the guest for a whole diagnosis, at an engineer's raised priority.

An engineer on a case opens one SSH session and runs every command in it; on a VM whose
CPU is saturated, root starts it with ``nice -n -20`` so the commands get CPU before
the workload does. :class:`GuestSession` is that session for a lab guest: one
``docker exec -i /bin/sh`` per diagnosis (a new ``docker exec`` per command would start
``runc`` inside the starved guest each time, seconds apiece under a CPU hog), whose
priority the host raises to -20 once, before any command runs (the guest's own root
cannot: a container has no ``CAP_SYS_NICE``, where a VM's root has). Every command is
forked by that shell, so it inherits the priority; the guest's CPU quota still bounds
it, so what the checks measure (a saturated quota stays saturated) is unchanged. The
checks see the same ``run(command) -> rc, stdout, stderr`` as with testinfra's docker
backend.

Each command runs as ``sh -c <command> </dev/null`` followed by an end marker carrying
its exit status on stdout and a marker on stderr, so outputs never mix between
commands. A command that does not finish within ``timeout`` seconds ends the session
(its processes are killed from the host); the next command opens a new one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import struct
import time
import weakref
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from checks.host import quote

PRIORITY = -20  # what `nice -n -20` gives an engineer's shell on a VM
COMMAND_TIMEOUT_SECONDS = 120.0
_STDOUT, _STDERR = 1, 2


@dataclass(frozen=True)
class SessionOutput:
    rc: int
    stdout: str
    stderr: str


class SessionError(RuntimeError):
    """The session could not be opened or broke while a command ran."""


class GuestSession:
    """A :class:`~checks.host.GuestHost` backed by one long-lived shell in a container."""

    def __init__(
        self,
        client: docker.DockerClient,
        container: str,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
        priority: int | None = PRIORITY,
    ) -> None:
        self._api = client.api
        self.container = container
        self.timeout = timeout
        self.priority = priority
        self._sock: socket.socket | None = None
        self._holder: Any = None  # docker-py's socket wrapper, kept alive with the socket
        self.pid: int | None = None
        self._finalizer: weakref.finalize[Any, GuestSession] | None = None

    # ------------------------------------------------------------------ GuestHost

    def run(self, command: str) -> SessionOutput:
        try:
            sock = self._open()
        except docker.errors.APIError as exc:
            # A guest whose OS is down (its container exited) answers as `docker exec`
            # does there: no shell, Docker's reason on stderr.
            return SessionOutput(1, "", f"Error response from daemon: {exc.explanation}\n")
        marker = f"__snaplab_end_{secrets.token_hex(8)}__"
        script = (
            f"sh -c {quote(command)} </dev/null; "
            f"printf '\\n{marker} %d\\n' \"$?\"; printf '\\n{marker}\\n' >&2\n"
        )
        try:
            sock.settimeout(self.timeout)
            sock.sendall(script.encode())
            out, err = self._collect(sock, marker)
        except (OSError, SessionError) as exc:
            self.close()
            if isinstance(exc, TimeoutError | socket.timeout):
                return SessionOutput(124, "", f"no answer within {self.timeout:g} s")
            raise SessionError(f"{self.container}: the guest session broke: {exc}") from exc
        last = out.rstrip("\n").rsplit("\n", 1)
        status = last[-1].removeprefix(marker).strip()
        stdout = last[0] if len(last) == 2 else ""
        stderr = err.rstrip("\n").rsplit("\n", 1)[0] if "\n" in err.rstrip("\n") else ""
        return SessionOutput(int(status) if status.lstrip("-").isdigit() else 255, stdout, stderr)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """End the shell (and whatever it still runs) and drop the connection."""
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._sock = self._holder = None
        self.pid = None

    def __enter__(self) -> GuestSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        exec_id = self._api.exec_create(
            self.container, ["/bin/sh"], stdin=True, stdout=True, stderr=True
        )["Id"]
        holder = self._api.exec_start(exec_id, socket=True)
        sock: socket.socket = getattr(holder, "_sock", holder)
        pid = self._host_pid(exec_id)
        if self.priority is not None and pid:
            with contextlib.suppress(OSError):  # not root: the commands still run, slower
                os.setpriority(os.PRIO_PROCESS, pid, self.priority)
        self._sock, self._holder, self.pid = sock, holder, pid
        self._finalizer = weakref.finalize(self, _shut, sock, holder, pid)
        return sock

    def _host_pid(self, exec_id: str) -> int | None:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            pid = self._api.exec_inspect(exec_id).get("Pid")
            if pid:
                return int(pid)
            time.sleep(0.02)
        return None

    # ------------------------------------------------------------------ stream

    def _collect(self, sock: socket.socket, marker: str) -> tuple[str, str]:
        """Read docker's multiplexed frames until both streams carry the marker."""
        out, err = bytearray(), bytearray()
        end_out, end_err = f"\n{marker} ".encode(), f"\n{marker}\n".encode()
        while not (end_out in out and out.endswith(b"\n") and end_err in err):
            header = _read_exactly(sock, 8)
            kind, size = header[0], struct.unpack(">I", header[4:])[0]
            data = _read_exactly(sock, size)
            if kind == _STDOUT:
                out += data
            elif kind == _STDERR:
                err += data
        return out.decode(errors="replace"), err.decode(errors="replace")


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise SessionError("the guest shell ended")
        chunks += chunk
    return bytes(chunks)


def _shut(sock: socket.socket, holder: Any, pid: int | None) -> None:
    """Kill the session's processes (from the host) and close its connection."""
    if pid:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid:  # only a group the session leads
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    for closable in (sock, holder):
        with contextlib.suppress(Exception):
            closable.close()
