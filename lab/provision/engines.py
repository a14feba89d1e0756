"""The Docker engines a run's or a drill's labs are placed on, as the trainer names them.

A trainer with more trainees than one engine holds names several engines, each as a Docker
context (what ``docker context ls`` lists) or as a ``DOCKER_HOST``-style URL
(``unix:///run/docker2.sock``, ``tcp://127.0.0.1:2375``). Every lab lives wholly on one
engine; the engine it went to is recorded (a drill's trainee keeps its URL) and every later
command for that lab connects to that engine, so check, hint, reset and end follow the lab.

Engines must share this machine's kernel. A lab is more than its containers: its
DOCKER-USER and guest-reach rules, its bridge's ports and the fabric and ARM twin addresses
snaplab talks to are all this machine's. An engine that reports another host name is
refused with one line, rather than half-built there.

The URL of every engine other than the default is remembered in the state folder, so
``snaplab down --all`` also sweeps what a killed run left on them.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.context import ContextAPI
from docker.errors import ContextNotFound, DockerException

from lab.errors import BadInput, EngineUnavailable
from lab.provision.state_dir import state_root

DEFAULT_SOCKET = "/var/run/docker.sock"
URL_SCHEMES = ("unix://", "tcp://", "http://", "https://")
KNOWN_FILE = "engines.json"
CLIENT_TIMEOUT = 300


@dataclass(frozen=True)
class Engine:
    """One engine: ``name`` as the trainer wrote it, ``url`` its address ("" = the
    environment's own engine: ``DOCKER_HOST``, or the default socket)."""

    name: str
    url: str = ""

    @property
    def is_default(self) -> bool:
        return not self.url

    @property
    def socket_path(self) -> str:
        """The engine's socket on this machine, for a container that drives its engine
        (the ARM twin powers VMs through it)."""
        url = self.url or os.environ.get("DOCKER_HOST", "")
        return url.removeprefix("unix://") if url.startswith("unix://") else DEFAULT_SOCKET


DEFAULT = Engine("default")

_clients: dict[str, docker.DockerClient] = {}
_engines_by_client: dict[int, Engine] = {}
_lock = threading.Lock()


def resolve(text: str) -> Engine:
    """An ``--engine`` value as an engine: ``default``, a URL, or a Docker context name."""
    value = text.strip()
    if not value:
        raise BadInput("--engine: empty value (give a Docker context name or a URL)")
    if value == DEFAULT.name:
        return DEFAULT
    if value.startswith(URL_SCHEMES):
        return Engine(value, value)
    if "://" in value:
        scheme = value.split("://", 1)[0]
        raise BadInput(f"--engine {value!r}: unsupported scheme {scheme!r} (unix or tcp)")
    try:
        context = ContextAPI.get_context(value)
    except ContextNotFound:
        context = None
    except DockerException as exc:
        raise BadInput(f"--engine {value!r}: cannot read Docker contexts: {exc}") from exc
    if context is None or not context.Host:
        raise BadInput(f"--engine {value!r}: no Docker context of that name, and not a URL")
    return Engine(value, str(context.Host))


def resolve_all(texts: Sequence[str]) -> list[Engine]:
    """Each ``--engine`` once, in the order given; none given means the default engine."""
    engines: list[Engine] = []
    for text in texts:
        engine = resolve(text)
        if all(e.url != engine.url for e in engines):
            engines.append(engine)
    return engines or [DEFAULT]


def from_url(url: str) -> Engine:
    """The engine a lab was recorded on (its URL, "" for the default)."""
    return Engine(url or DEFAULT.name, url)


def connect(engine: Engine) -> docker.DockerClient:
    """A client for ``engine`` that answers now (one per engine and process)."""
    with _lock:
        cached = _clients.get(engine.url)
    if cached is not None:
        return cached
    try:
        if engine.is_default:
            client = docker.from_env(timeout=CLIENT_TIMEOUT)
        else:
            client = docker.DockerClient(base_url=engine.url, timeout=CLIENT_TIMEOUT)
        client.ping()
    except DockerException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineUnavailable(
            f"engine {engine.name}: no Docker engine answers ({first})"
        ) from exc
    with _lock:
        _clients.setdefault(engine.url, client)
        client = _clients[engine.url]
        _engines_by_client[id(client)] = engine
    return client


def engine_of(client: docker.DockerClient) -> Engine:
    """The engine a client was made for (the default for a client made elsewhere)."""
    with _lock:
        return _engines_by_client.get(id(client), DEFAULT)


def connected() -> list[docker.DockerClient]:
    """Every engine client this process has made, the default's first if made."""
    with _lock:
        return sorted(_clients.values(), key=lambda c: _engines_by_client[id(c)].url)


def docker_cli(client: docker.DockerClient) -> list[str]:
    """The ``docker`` command line that reaches the client's engine (``-H`` for one that
    is not the environment's own)."""
    engine = engine_of(client)
    return ["docker"] if engine.is_default else ["docker", "-H", engine.url]


def require_this_machine(engine: Engine, client: docker.DockerClient) -> None:
    """Refuse an engine on another host: its labs' host side would be missing."""
    if engine.is_default:
        return
    try:
        host = str(client.info().get("Name", ""))
    except DockerException as exc:
        raise EngineUnavailable(f"engine {engine.name}: cannot read its info ({exc})") from exc
    here = socket.gethostname()
    if host and host != here:
        raise BadInput(
            f"--engine {engine.name!r}: it runs on host {host!r}, not on this machine "
            f"({here!r}); a lab's firewall rules and platform addresses are its host's, "
            "so snaplab places labs only on engines of this machine"
        )


def place(items: Sequence[str], engines: Sequence[Engine]) -> dict[str, Engine]:
    """Round-robin: item i goes to engine i mod n, so a class spreads evenly."""
    if not engines:
        raise BadInput("--engine: no engine to place labs on")
    return {item: engines[index % len(engines)] for index, item in enumerate(items)}


def _known_path() -> Path:
    return state_root() / KNOWN_FILE


@contextmanager
def _known_locked() -> Iterator[Path]:
    path = _known_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path


def remember(engines: Sequence[Engine]) -> None:
    """Note non-default engines, so a later ``down --all`` sweeps them too."""
    extra = [e for e in engines if not e.is_default]
    if not extra:
        return
    with _known_locked() as path:
        known = _read_known(path)
        for engine in extra:
            known[engine.url] = engine.name
        path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")


def known() -> list[Engine]:
    """The default engine and every other engine labs were ever placed on."""
    with _known_locked() as path:
        found = _read_known(path)
    return [DEFAULT, *(Engine(name, url) for url, name in sorted(found.items()))]


def _read_known(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(url): str(name) for url, name in data.items() if str(url)}


def answering(
    default: docker.DockerClient, skipped: Callable[[Engine, EngineUnavailable], None]
) -> Iterator[tuple[Engine, docker.DockerClient]]:
    """Every engine labs were placed on, the usual one first, with a client; one that does
    not answer now goes to ``skipped`` instead."""
    for placed in known():
        try:
            yield placed, default if placed.is_default else connect(placed)
        except EngineUnavailable as exc:
            skipped(placed, exc)


def connect_for_lab(lab: str | None) -> docker.DockerClient:
    """The client of the engine holding ``lab``: the usual engine, else another engine
    labs were placed on (the usual one when no engine has it, or no lab is named, so the
    command's own "no lab named ..." answers)."""
    from lab.provision import engine
    from lab.provision import lab as labs

    default = engine.connect()
    if lab is None:
        return default
    for _, client in answering(default, lambda placed, exc: None):
        if lab in labs.lab_names(client):
            return client
    return default
