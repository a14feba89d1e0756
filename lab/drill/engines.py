"""The engine of each trainee's lab, for every drill command after the start.

``drill start`` records the engine a trainee's lab went to (:mod:`lab.provision.engines`);
check, reset, the guest's "check my solution", the command history and ``drill end``
reach the lab through that engine. A trainee recorded without one is on the engine the
command was given (the environment's own).
"""

from __future__ import annotations

import docker

from lab.drill.state import Trainee
from lab.provision import engines


def client_on(default: docker.DockerClient, url: str) -> docker.DockerClient:
    """The client of the engine recorded as ``url`` (``default`` for "")."""
    return engines.connect(engines.from_url(url)) if url else default


def client_for(default: docker.DockerClient, trainee: Trainee) -> docker.DockerClient:
    """The client of the engine ``trainee``'s lab is on."""
    return client_on(default, trainee.engine)
