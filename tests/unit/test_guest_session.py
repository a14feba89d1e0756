"""The guest session's protocol against a real local /bin/sh behind a fake Docker API
that frames its output the way Docker's exec stream does (8-byte headers per chunk)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from typing import Any

import pytest

from checks.session import GuestSession


class FakeExecApi:
    """exec_create / exec_start(socket=True) / exec_inspect over a local shell."""

    def __init__(self) -> None:
        self.shells: list[subprocess.Popen[bytes]] = []

    def exec_create(self, container: str, cmd: list[str], **_: Any) -> dict[str, str]:
        return {"Id": str(len(self.shells))}

    def exec_start(self, exec_id: str, socket: bool) -> Any:
        ours, theirs = _socketpair()
        shell = subprocess.Popen(
            ["/bin/sh"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.shells.append(shell)
        lock = threading.Lock()

        def pump(stream: Any, kind: int) -> None:
            for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
                with lock:
                    theirs.sendall(bytes([kind, 0, 0, 0]) + struct.pack(">I", len(chunk)) + chunk)

        def feed() -> None:
            for data in iter(lambda: theirs.recv(4096), b""):
                assert shell.stdin is not None
                shell.stdin.write(data)
                shell.stdin.flush()

        for target, args in ((pump, (shell.stdout, 1)), (pump, (shell.stderr, 2)), (feed, ())):
            threading.Thread(target=target, args=args, daemon=True).start()
        return ours

    def exec_inspect(self, exec_id: str) -> dict[str, int]:
        return {"Pid": self.shells[int(exec_id)].pid}


def _socketpair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair()


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeExecApi()


@pytest.fixture
def session() -> Any:
    client = FakeClient()
    with GuestSession(client, "guest", timeout=5, priority=None) as s:
        yield s
    for shell in client.api.shells:
        shell.wait(timeout=5)


def test_status_and_both_streams_per_command(session: GuestSession) -> None:
    out = session.run("echo out; echo err >&2; exit 3")
    assert (out.rc, out.stdout, out.stderr) == (3, "out\n", "err\n")
    out = session.run("printf 'no newline'")
    assert (out.rc, out.stdout, out.stderr) == (0, "no newline", "")


def test_commands_share_one_shell_but_not_their_output(session: GuestSession) -> None:
    first = session.run("echo one")
    pid = session.pid
    second = session.run("echo two; echo 'warn' >&2")
    assert session.pid == pid
    assert (first.stdout, second.stdout, second.stderr) == ("one\n", "two\n", "warn\n")


def test_quotes_and_stdin_are_the_commands_own(session: GuestSession) -> None:
    out = session.run("""printf '%s|' "a b" 'c"d'; cat; echo done""")
    assert out.stdout == 'a b|c"d|done\n'


def test_a_command_that_hangs_ends_the_session_and_the_next_opens_another(
    session: GuestSession,
) -> None:
    session.timeout = 1
    started = time.monotonic()
    out = session.run("sleep 30")
    assert out.rc == 124 and time.monotonic() - started < 5
    assert session.pid is None
    assert session.run("echo back").stdout == "back\n"
