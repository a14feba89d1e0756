"""What a resource provider of the twin is: routes, each with its handler and the resource
type whose api-versions it answers.

The twin's application (:mod:`lab.platform.arm.app`) owns what every request shares:
authentication, the api-version check, ARM's error bodies and request ids, the lab's
roster. A provider module (:mod:`~lab.platform.arm.compute`,
:mod:`~lab.platform.arm.network`, ...) owns only its URLs and documents, so the package's
layout shows which parts of Azure the lab serves.

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from werkzeug.wrappers import Request, Response

from lab.platform.arm.conventions import ResourceType
from lab.platform.roster import Roster


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: the request, the URL's parts and the lab's roster
    (read once per request from the fabric)."""

    request: Request
    args: dict[str, str]
    roster: Roster


Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    """A URL pattern (Werkzeug rule syntax), its methods, handler and resource type."""

    path: str
    methods: tuple[str, ...]
    handler: Handler
    resource_type: ResourceType


class Provider(Protocol):
    """A resource provider: the routes it serves."""

    def routes(self) -> Sequence[Route]: ...
