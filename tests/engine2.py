"""A second Docker engine on this machine, for tests of labs placed on several engines.

A trainer's class spreads over a few hosts; here the second host is a second
``dockerd`` (Debian's docker.io 20.10) with its own socket, data root, exec root,
pidfile, containerd namespaces and config file, so it shares nothing with the first
engine but the kernel. It has no default bridge (``--bridge=none``): labs make their
own internal networks.

The kernel's iptables is the one thing the two daemons share. Measured here with a
running lab on the first engine: the second daemon's start removes and recreates the
chains Docker's bridge driver owns (``DOCKER``, ``DOCKER-ISOLATION-STAGE-1/2`` and the
nat ``DOCKER`` chain with its ``PREROUTING``/``OUTPUT`` jumps) and fills them for its own
networks only, so the first engine's internal-network isolation rules vanished;
``DOCKER-USER`` and snaplab's own rules stayed. Its stop changed nothing. So the second
engine keeps ``--iptables`` on — its own lab networks get Docker's isolation rules just
as on the first engine — and :func:`start` saves the owned chains before the daemon
starts and puts the first engine's rules back once it answers (:mod:`tests.docker_chains`).
In the second or so between (the daemon answered 0.5-0.6 s after its start here),
snaplab's ``DOCKER-USER`` edge rules (:mod:`lab.provision.guest_reach`) still keep every
lab's traffic inside its bridge. A network the first engine creates in that gap can lose
its isolation rules for good; the tests start the second engine while no lab is being
created by them.

The kernel's routes are shared too: the second engine accepts a lab subnet the first
one already uses (both bridges then hold the same gateway address and the host's route
goes to the first), so labs on one machine must take their /24s from one plan across
engines.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, NotFound

from lab.provision import images
from tests import docker_chains

NAME = "snaplab-engine2"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PREDEFINED_NETWORKS = {"bridge", "host", "none"}


@dataclass(frozen=True)
class Layout:
    """Where one extra engine keeps its things, all named after it."""

    name: str = NAME

    @property
    def run_dir(self) -> Path:
        return Path("/run") / self.name

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return Path("/var/lib") / self.name

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "daemon.json"

    @property
    def log(self) -> Path:
        return Path("/var/log") / f"{self.name}.log"


ENGINE2 = Layout()
URL = ENGINE2.url


class Engine2Error(RuntimeError):
    """The second engine did not start or stop as asked (the log file says why)."""


@dataclass
class Engine2:
    """A running second engine: its URL, a client, and the rules put back at its start."""

    url: str
    client: docker.DockerClient
    process: subprocess.Popen[bytes]
    layout: Layout
    restored: list[docker_chains.Restored] = field(default_factory=list)


def argv(layout: Layout = ENGINE2) -> list[str]:
    """The daemon's command line: nothing shared with the first engine but the kernel."""
    return [
        "dockerd",
        f"--host={layout.url}",
        f"--data-root={layout.data_root}",
        f"--exec-root={layout.exec_root}",
        f"--pidfile={layout.pidfile}",
        f"--config-file={layout.config_file}",
        f"--containerd-namespace={layout.name}",
        f"--containerd-plugins-namespace={layout.name}-plugins",
        "--bridge=none",
    ]


def start(
    first: docker.DockerClient | None,
    *,
    keep_first_engine_rules: bool = True,
    layout: Layout = ENGINE2,
) -> Engine2:
    """Start the second engine and wait until it answers.

    With ``keep_first_engine_rules`` (always, except to measure the damage), the rules
    of ``first``'s networks in Docker's chains are saved before and put back after the
    start.
    """
    _stop_leftover(layout)
    for directory in (layout.run_dir, layout.exec_root, layout.data_root):
        directory.mkdir(parents=True, exist_ok=True)
    layout.config_file.write_text(json.dumps({}))
    before = docker_chains.snapshot() if keep_first_engine_rules else {}
    with layout.log.open("ab") as log:
        process = subprocess.Popen(
            argv(layout),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        client = _wait_until_it_answers(process, layout)
    except BaseException:
        _terminate(process, layout)
        raise
    engine = Engine2(url=layout.url, client=client, process=process, layout=layout)
    if keep_first_engine_rules:
        # Bridges that exist (every engine's networks) and the first engine's by name
        # (its default bridge's rules stay even where docker0 itself is gone).
        interfaces = docker_chains.interfaces()
        if first is not None:
            interfaces |= docker_chains.bridges(first)
        engine.restored = docker_chains.restore(before, interfaces)
    return engine


def stop(engine: Engine2) -> None:
    """Remove every container and network the engine holds, then stop the daemon.

    Images stay in its data root, so the next start needs no new copy of them.
    """
    try:
        _empty(engine.client)
    finally:
        engine.client.close()
        _terminate(engine.process, engine.layout)


@contextlib.contextmanager
def running(
    first: docker.DockerClient | None,
    *,
    keep_first_engine_rules: bool = True,
    layout: Layout = ENGINE2,
) -> Iterator[Engine2]:
    engine = start(first, keep_first_engine_rules=keep_first_engine_rules, layout=layout)
    try:
        # Its data root outlives the session: images of older recipes would pile up there
        # (``snaplab setup`` prunes only the engines it knows of).
        images.prune_stale_images(engine.client, images.all_recipes())
        yield engine
    finally:
        stop(engine)


def _wait_until_it_answers(process: subprocess.Popen[bytes], layout: Layout) -> docker.DockerClient:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise Engine2Error(f"dockerd exited with {process.returncode} (see {layout.log})")
        try:
            client = docker.DockerClient(base_url=layout.url, timeout=300)
            client.ping()
            return client
        except DockerException:
            if time.monotonic() > deadline:
                raise Engine2Error(f"dockerd did not answer within {START_TIMEOUT:.0f} s") from None
            time.sleep(0.5)


def _empty(client: docker.DockerClient) -> None:
    for container in client.containers.list(all=True):
        with contextlib.suppress(NotFound):
            container.remove(force=True, v=True)
    for network in client.networks.list():
        if network.name in PREDEFINED_NETWORKS:
            continue
        with contextlib.suppress(NotFound, APIError):
            network.remove()


def _terminate(process: subprocess.Popen[bytes], layout: Layout) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    _kill_own_containerd(layout)


def _stop_leftover(layout: Layout) -> None:
    """An engine a killed test run left running (its pidfile names a live dockerd whose
    parent is gone). One whose parent lives belongs to another test session: refused."""
    pid = _pid_from(layout.pidfile)
    command = _cmdline(pid) if pid is not None else ""
    if pid is None or "dockerd" not in command or str(layout.data_root) not in command:
        _kill_own_containerd(layout)
        return
    parent = _parent(pid)
    if parent > 1 and _alive(parent):
        raise Engine2Error(
            f"{layout.name} is in use: dockerd {pid}, started by process {parent} "
            f"({_cmdline(parent)[:80].strip()})"
        )
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _kill_own_containerd(layout)


def _kill_own_containerd(layout: Layout) -> None:
    """The containerd our dockerd started, should it outlive a killed dockerd."""
    pid = _pid_from(layout.exec_root / "containerd" / "containerd.pid")
    if pid is not None and str(layout.exec_root) in _cmdline(pid):
        os.kill(pid, signal.SIGKILL)


def _pid_from(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and _alive(int(text)) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid)


def _parent(pid: int) -> int:
    for line in _status(pid).splitlines():
        if line.startswith("ppid:"):
            return int(line.split()[1])
    return 0


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
