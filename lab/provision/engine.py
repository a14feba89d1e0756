"""Make sure a Docker engine answers, installing and starting Debian's one if needed.

The lab machine may be a fresh Debian with nothing but Python: ``snaplab setup`` (and
every command that needs Docker) installs ``docker.io`` and starts ``dockerd`` when no
engine answers. When ``DOCKER_HOST`` is set the user chose an engine, so snaplab only
reports that it is unreachable instead of starting a different one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import DockerException

from lab.errors import EngineUnavailable

INOTIFY_INSTANCES_PATH = Path("/proc/sys/fs/inotify/max_user_instances")
# Each systemd guest takes ~7 inotify instances; the default 128 stops at ~18 guests.
INOTIFY_INSTANCES_WANTED = 8192
ENGINE_START_TIMEOUT = 60.0
DOCKERD_LOG = Path("/var/log/snaplab-dockerd.log")

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def connect() -> docker.DockerClient:
    """A client for an engine that answers now, or :class:`EngineUnavailable`."""
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(f"no Docker engine answers ({_first_line(exc)})") from exc
    return client


def ensure_engine(report: Report = _quiet) -> docker.DockerClient:
    """Return a client, installing and starting the engine first if none answers."""
    try:
        return connect()
    except EngineUnavailable:
        if os.environ.get("DOCKER_HOST"):
            raise EngineUnavailable(
                f"Docker engine at {os.environ['DOCKER_HOST']} does not answer "
                "(DOCKER_HOST is set, so snaplab will not install or start one)"
            ) from None
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers, and installing one needs root")
    if shutil.which("dockerd") is None:
        report("installing Debian's docker.io")
        _install_docker()
    report("starting dockerd")
    _start_dockerd()
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while True:
        try:
            return connect()
        except EngineUnavailable:
            if time.monotonic() > deadline:
                raise EngineUnavailable(
                    f"dockerd did not answer within {ENGINE_START_TIMEOUT:.0f} s "
                    f"(see {DOCKERD_LOG})"
                ) from None
            time.sleep(0.5)


def raise_inotify_limit() -> None:
    """Raise fs.inotify.max_user_instances so many systemd guests can run side by side."""
    try:
        current = int(INOTIFY_INSTANCES_PATH.read_text())
        if current < INOTIFY_INSTANCES_WANTED:
            INOTIFY_INSTANCES_PATH.write_text(str(INOTIFY_INSTANCES_WANTED))
    except OSError:
        # Not root or no procfs: guests still run, only fewer of them at once.
        pass


def _install_docker() -> None:
    if shutil.which("apt-get") is None:
        raise EngineUnavailable("no Docker engine answers and apt-get is missing to install one")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "docker.io", "iptables"],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise EngineUnavailable(f"could not install docker.io: {tail[0]}")


def _start_dockerd() -> None:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        done = subprocess.run(
            ["systemctl", "start", "docker"], capture_output=True, text=True, check=False
        )
        if done.returncode == 0:
            return
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            ["dockerd"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
