"""The ARM twin's power side: VM power states and actions, and Docker carrying them out.

Power operations (power off / deallocate / start / restart) stop, start or restart the
guest's container, as the host stops or boots a VM. Power off leaves the VM allocated
(``stopped``), deallocate releases it (``deallocated``); a container has no host
resources to release, so both stop it, and the platform's record tells them apart.
The power state the twin *shows* is the fabric's record
(:mod:`lab.platform.power_states`): the twin writes an operation's outcome there once it
is done, and the host's watcher (:mod:`lab.platform.host_power`)
writes ``stopped`` when a guest OS halts, as Azure shows a VM shut down from inside.
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

from lab.platform.guest_cgroups import open_cgroups

# The twin logs under one name, whichever of its modules speaks.
_log = logging.getLogger("lab.platform.arm")


class PowerError(Exception):
    """Docker could not carry out a power operation on a guest container."""


class PowerState(Enum):
    """A VM's power state; the value is the suffix of its ``PowerState/...`` code."""

    RUNNING = "running"
    STOPPED = "stopped"
    DEALLOCATED = "deallocated"
    STARTING = "starting"
    STOPPING = "stopping"
    DEALLOCATING = "deallocating"
    UNKNOWN = "unknown"

    @property
    def display(self) -> str:
        return "Unknown" if self is PowerState.UNKNOWN else f"VM {self.value}"


class PowerAction(Enum):
    """A power operation; the value is its ARM action name (the last URL segment)."""

    POWER_OFF = "powerOff"
    DEALLOCATE = "deallocate"
    START = "start"
    RESTART = "restart"

    @property
    def stops(self) -> bool:
        """Whether the operation stops the guest (power off and deallocate do)."""
        return self in (PowerAction.POWER_OFF, PowerAction.DEALLOCATE)

    @property
    def transition(self) -> PowerState:
        """What the instance view shows while this operation runs."""
        return _TRANSITIONS[self]

    @property
    def outcome(self) -> PowerState:
        """The platform's power state once the operation is done."""
        return _OUTCOMES[self]


_TRANSITIONS = {
    PowerAction.POWER_OFF: PowerState.STOPPING,
    PowerAction.DEALLOCATE: PowerState.DEALLOCATING,
    PowerAction.START: PowerState.STARTING,
    PowerAction.RESTART: PowerState.STARTING,
}
_OUTCOMES = {
    PowerAction.POWER_OFF: PowerState.STOPPED,
    PowerAction.DEALLOCATE: PowerState.DEALLOCATED,
    PowerAction.START: PowerState.RUNNING,
    PowerAction.RESTART: PowerState.RUNNING,
}


def platform_power_state(value: str | None) -> PowerState:
    """The fabric's power state (``running``/``stopped``/``deallocated``) as a
    :class:`PowerState`."""
    settled = (PowerState.RUNNING, PowerState.STOPPED, PowerState.DEALLOCATED)
    return next((s for s in settled if s.value == value), PowerState.UNKNOWN)


class PowerBackend(Protocol):
    """Changes a guest container's power state."""

    def act(self, container: str, action: PowerAction) -> None:
        """Carry out ``action`` and return when done; raises :class:`PowerError`."""
        ...


class DockerPower:
    """:class:`PowerBackend` on the Docker engine (needs the engine's socket mounted).

    Uses only the docker-py calls that Debian's python3-docker 5.0.3 shares with 7.x.
    The client is made on first use (``docker.from_env()`` unless ``client_factory``
    is given), so importing this module needs no engine.
    """

    def __init__(
        self,
        stop_timeout: int = 30,
        client_factory: Callable[[], Any] | None = None,
        open_guest: Callable[[Any, str], None] | None = None,
    ) -> None:
        self._stop_timeout = stop_timeout
        # After a start or restart the guest waits for its cgroups (lab.platform.guest_cgroups).
        self._open_guest = open_guest or _open_guest_cgroups
        self._client_factory = client_factory or _docker_from_env
        self._client: Any = None
        self._lock = threading.Lock()

    def act(self, container: str, action: PowerAction) -> None:
        try:
            target = self._container(container)
            if action.stops:
                target.stop(timeout=self._stop_timeout)
            elif action is PowerAction.START:
                target.start()
                self._open_guest(self._client, container)
            else:
                target.restart(timeout=self._stop_timeout)
                self._open_guest(self._client, container)
        except Exception as exc:  # docker-py raises its own and requests' errors
            raise PowerError(f"docker could not {action.value} {container}: {exc}") from exc

    def _container(self, name: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            client = self._client
        return client.containers.get(name)


def _open_guest_cgroups(client: Any, container: str) -> None:
    open_cgroups(client.api, container)


def _docker_from_env() -> Any:
    import docker  # only the twin's container has it; the fabric's services do not

    return docker.from_env()
