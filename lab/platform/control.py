"""The fabric's control API (port 8080): how the CLI and the ARM twin see the platform.

Guests never call this; the snaplab CLI on the Docker host and the ARM twin do, to read
what the platform believes about each VM (the instance view) and to push a new goal
state. JSON only, versioned under ``/control/v1`` so the CLI and a fabric image built
from another commit fail loudly rather than misread each other.

Routes::

    GET  /control/v1/health                      {"ok": true, "lab": str}
    GET  /control/v1/roster                      the roster JSON
    GET  /control/v1/vms                         {"lab": str, "vms": [VM]}
    GET  /control/v1/vms/<name>                  VM
    GET  /control/v1/vms/<name>/status-raw       the last status JSON the agent sent
    POST /control/v1/vms/<name>/incarnation      {"name": str, "incarnation": str}

VM is :meth:`lab.platform.instance_view.GuestView.to_json`. Errors are ``{"error": str}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from lab.platform.guest_state import Fabric

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

PREFIX = ("control", "v1")


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(payload, sort_keys=True), status=status, content_type="application/json"
    )


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _not_allowed(allowed: str) -> Response:
    response = _error(405, f"method not allowed; use {allowed}")
    response.headers["Allow"] = allowed
    return response


class ControlApp:
    """WSGI app for port 8080. Construct with the lab's shared :class:`Fabric`."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:
            log.exception("control: unhandled error for %s %s", request.method, request.path)
            response = _error(500, "internal error in the lab control API")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        segments = tuple(s for s in request.path.split("/") if s)
        if segments[:2] != PREFIX:
            return _error(404, f"no such resource: {request.path}")
        rest = segments[2:]
        method = request.method
        if rest == ("health",):
            return self._get_only(method) or _json({"ok": True, "lab": self.fabric.roster.lab})
        if rest == ("roster",):
            return self._get_only(method) or _json(json.loads(self.fabric.roster.to_json()))
        if rest == ("vms",):
            return self._get_only(method) or _json(
                {
                    "lab": self.fabric.roster.lab,
                    "vms": [g.view().to_json() for g in self.fabric.guests()],
                }
            )
        if len(rest) >= 2 and rest[0] == "vms":
            return self._vm(request, rest[1], rest[2:])
        return _error(404, f"no such resource: {request.path}")

    @staticmethod
    def _get_only(method: str) -> Response | None:
        return None if method in ("GET", "HEAD") else _not_allowed("GET")

    def _vm(self, request: Request, name: str, rest: tuple[str, ...]) -> Response:
        guest = self.fabric.guest(name)
        if guest is None:
            return _error(404, f"no VM named {name!r} in lab {self.fabric.roster.lab!r}")
        if rest == ():
            return self._get_only(request.method) or _json(guest.view().to_json())
        if rest == ("status-raw",):
            refused = self._get_only(request.method)
            if refused:
                return refused
            latest = guest.latest_status()
            if latest is None:
                return _error(404, f"VM {name!r} has not reported a status yet")
            return Response(latest.raw, status=200, content_type="application/json")
        if rest == ("incarnation",):
            if request.method != "POST":
                return _not_allowed("POST")
            return _json({"name": name, "incarnation": guest.bump()})
        return _error(404, f"no such resource: {request.path}")
