"""The guest as checks see it: something that runs a shell command and answers.

This is the part of testinfra's ``Host`` the checks use (``host.run``), written as a
protocol so a check works the same on testinfra's docker backend, on an SSH backend
against a real Azure VM, or on the canned fakes of :mod:`checks.fakes`. Checks only use
``run`` — no testinfra modules — so a fake needs nothing but command output.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Protocol


class CommandOutput(Protocol):
    """What ``host.run`` returns (testinfra's ``CommandResult`` has these)."""

    @property
    def rc(self) -> int: ...

    @property
    def stdout(self) -> str: ...

    @property
    def stderr(self) -> str: ...


class GuestHost(Protocol):
    """A guest that runs ``/bin/sh -c`` commands as root."""

    def run(self, command: str) -> CommandOutput: ...


def quote(value: str) -> str:
    return shlex.quote(value)


def read_file(host: GuestHost, path: str) -> str | None:
    """The file's text, or None when it is absent or unreadable."""
    out = host.run(f"cat {quote(path)} 2>/dev/null")
    return out.stdout if out.rc == 0 else None


def tcp_connect(host: GuestHost, ip: str, port: int, seconds: int = 3) -> TcpOutcome:
    """Open a TCP connection from inside the guest (bash's /dev/tcp, bounded by timeout)."""
    script = f"exec 3<>/dev/tcp/{ip}/{port}"
    out = host.run(f"timeout {seconds} bash -c {quote(script)}")
    return TcpOutcome.from_rc(out.rc, out.stderr, seconds)


@dataclass(frozen=True)
class TcpOutcome:
    """A connection attempt: connected, or why not (a DROP times out, a REJECT refuses)."""

    connected: bool
    why: str

    @classmethod
    def from_rc(cls, rc: int, stderr: str, seconds: int) -> TcpOutcome:
        if rc == 0:
            return cls(True, "connected")
        if rc == 124:
            return cls(False, f"no answer within {seconds} s (packets dropped)")
        message = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {rc}"
        return cls(False, message.split(": ")[-1])


@dataclass(frozen=True)
class GuestProbe:
    """Whether the guest OS answers at all, and what systemd says about its state."""

    answers: bool
    state: str

    @property
    def running(self) -> bool:
        """The OS is up (not answering, or shutting down, counts as down)."""
        return self.answers and self.state not in ("stopping", "offline")


def probe(host: GuestHost) -> GuestProbe:
    """Ask systemd how the system is; no answer at all means the OS is not running."""
    out = host.run("systemctl is-system-running 2>/dev/null || true")
    state = out.stdout.strip()
    if out.rc != 0 or not state:
        reason = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "no answer"
        return GuestProbe(False, reason)
    return GuestProbe(True, state)
