"""The seam to trainee access (:mod:`lab.drill.access`, built beside the drill).

``drill start`` and ``drill reset`` call :func:`grant` once a trainee's lab is broken and
its symptom read. While the access module is absent the drill still runs (the trainer
works in the labs with ``snaplab ssh``) and the roster says "access: not set up".
The call is ``lab.drill.access.grant_access(client, drill_dir, trainee_id, roster,
symptom, vm=VM) -> Access``; it replaces a trainee's earlier access (``drill reset``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import docker

from lab.drill.state import Access, Trainee, drill_dir
from lab.platform.roster import Roster

MODULE = "lab.drill.access"


def access_module() -> ModuleType | None:
    try:
        return importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != MODULE:
            raise
        return None


def grant(
    client: docker.DockerClient, drill: str, trainee: Trainee, roster: Roster
) -> Access | None:
    """Set up the trainee's access to their lab; None while there is no access module."""
    module = access_module()
    if module is None or not hasattr(module, "grant_access") or trainee.symptom is None:
        return None
    result: Any = module.grant_access(
        client, drill_dir(drill), trainee.id, roster, trainee.symptom, vm=trainee.vm
    )
    if isinstance(result, Access):
        return result
    return Access.model_validate(dict(result))
