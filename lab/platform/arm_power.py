"""The ARM twin's power side: VM power states and actions, and Docker carrying them out.

The twin takes a VM's power state from its guest container's Docker state, and power
operations (power off / start / restart) stop, start or restart that container.
:class:`PowerBackend` is the seam that keeps the twin testable without a lab;
:class:`DockerPower` is the real one.

Runs inside the twin's container on Debian's Python: stdlib and ``docker`` only (the
latter imported on first use), and nothing from ``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import Enum
from typing import Any, Protocol

# The twin logs under one name, whichever of its modules speaks.
_log = logging.getLogger("lab.platform.armtwin")


class PowerError(Exception):
    """Docker could not carry out a power operation on a guest container."""


class PowerState(Enum):
    """A VM's power state; the value is the suffix of its ``PowerState/...`` code."""

    RUNNING = "running"
    STOPPED = "stopped"
    STARTING = "starting"
    STOPPING = "stopping"
    UNKNOWN = "unknown"

    @property
    def display(self) -> str:
        return "Unknown" if self is PowerState.UNKNOWN else f"VM {self.value}"


class PowerAction(Enum):
    """A power operation; the value is its ARM action name (the last URL segment)."""

    POWER_OFF = "powerOff"
    START = "start"
    RESTART = "restart"

    @property
    def transition(self) -> PowerState:
        """What the instance view shows while this operation runs."""
        return PowerState.STOPPING if self is PowerAction.POWER_OFF else PowerState.STARTING


class PowerBackend(Protocol):
    """Observes and changes a guest container's power state."""

    def state(self, container: str) -> PowerState:
        """The container's state now; UNKNOWN when it cannot be observed."""
        ...

    def act(self, container: str, action: PowerAction) -> None:
        """Carry out ``action`` and return when done; raises :class:`PowerError`."""
        ...


# A paused container is frozen but still "on"; Azure has no paused state.
_DOCKER_POWER = {
    "running": PowerState.RUNNING,
    "paused": PowerState.RUNNING,
    "restarting": PowerState.STARTING,
    "removing": PowerState.STOPPING,
    "created": PowerState.STOPPED,
    "exited": PowerState.STOPPED,
    "dead": PowerState.STOPPED,
}


class DockerPower:
    """:class:`PowerBackend` on the Docker engine (needs the engine's socket mounted).

    Uses only the docker-py calls that Debian's python3-docker 5.0.3 shares with 7.x.
    The client is made on first use (``docker.from_env()`` unless ``client_factory``
    is given), so importing this module needs no engine.
    """

    def __init__(
        self, stop_timeout: int = 30, client_factory: Callable[[], Any] | None = None
    ) -> None:
        self._stop_timeout = stop_timeout
        self._client_factory = client_factory or _docker_from_env
        self._client: Any = None
        self._lock = threading.Lock()

    def state(self, container: str) -> PowerState:
        try:
            status = str(self._container(container).status)
        except Exception as exc:  # docker-py raises its own and requests' errors
            _log.warning("cannot read the state of container %s: %s", container, exc)
            return PowerState.UNKNOWN
        return _DOCKER_POWER.get(status, PowerState.UNKNOWN)

    def act(self, container: str, action: PowerAction) -> None:
        try:
            target = self._container(container)
            if action is PowerAction.POWER_OFF:
                target.stop(timeout=self._stop_timeout)
            elif action is PowerAction.START:
                target.start()
            else:
                target.restart(timeout=self._stop_timeout)
        except Exception as exc:  # docker-py raises its own and requests' errors
            raise PowerError(f"docker could not {action.value} {container}: {exc}") from exc

    def _container(self, name: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            client = self._client
        return client.containers.get(name)


def _docker_from_env() -> Any:
    import docker  # only the twin's container has it; the fabric's services do not

    return docker.from_env()
