"""The control API's extension routes: the goal state's handlers, and CRP's way of setting one.

The ARM twin is the lab's CRP. When a user creates or updates an extension through ARM
(or asks for a Run Command), CRP puts the handler in the VM's goal state with its
settings and a new sequence number; the real agent picks it up on its next poll,
installs or re-enables the handler and reports. These routes let the twin do exactly
that, and read back what the goal state holds (ARM's model of a VM's extensions,
which exists before, and apart from, what the agent reports)::

    GET /control/v1/vms/<name>/extensions            {"vm", "handlers": [Handler]}
    PUT /control/v1/vms/<name>/extensions/<handler>  body {"version": str,
                                                      "public_settings": {...},
                                                      "protected_settings": {...}|null}
                                                     -> {"vm", "name", "version",
                                                         "seq_no", "incarnation"}

Handler is ``{"name", "version", "state", "seq_no", "public_settings"}`` (protected
settings are never read back, as in Azure). A PUT enables the handler with the next
sequence number (0 for a handler new to the VM), so the agent runs ``enable`` with the
new settings; protected settings are encrypted to the VM's tenant certificate when the
agent fetches ExtensionsConfig, as for the backup's settings. Only a handler the platform
publishes (its manifest is served) and one of its listed versions can be set: 404 for an
unknown VM or handler, 409 for a version the manifest does not list, 400 for a bad body.

:class:`ExtensionRoutes` is WSGI middleware on the control app, as
:class:`~lab.platform.redeploy.RedeployRoutes` is: every other request goes to the
wrapped app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from lab.platform.documents import HandlerSpec
from lab.platform.guest_state import Fabric, GuestState
from lab.platform.http_util import BodyTooLarge, read_body

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

# Settings of one handler: a Run Command's script (256 KiB at most on Azure) and change.
MAX_BODY = 512 * 1024


class ExtensionRoutes:
    """WSGI middleware on the control app: the goal state's extension handlers."""

    def __init__(self, app: WSGIApplication, fabric: Fabric) -> None:
        self.app = app
        self.fabric = fabric

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        segments = [s for s in environ.get("PATH_INFO", "").split("/") if s]
        if (
            len(segments) not in (5, 6)
            or segments[:3] != ["control", "v1", "vms"]
            or segments[4] != "extensions"
        ):
            return self.app(environ, start_response)
        request = Request(environ)
        guest = self.fabric.guest(segments[3])
        if guest is None:
            response = _json({"error": f"no VM named {segments[3]!r}"}, 404)
        elif len(segments) == 5:
            response = self._list(request, guest)
        else:
            response = self._put(request, guest, segments[5])
        return response(environ, start_response)

    def _list(self, request: Request, guest: GuestState) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _not_allowed("GET")
        handlers = [handler_json(h) for h in guest.handlers()]
        return _json({"vm": guest.name, "handlers": handlers})

    def _put(self, request: Request, guest: GuestState, handler: str) -> Response:
        if request.method != "PUT":
            return _not_allowed("PUT")
        artifacts = self.fabric.artifacts
        listed = artifacts.versions(handler)
        if not listed:
            return _json({"error": f"the platform publishes no handler {handler!r}"}, 404)
        try:
            body = _body(request)
            version, public, protected = _settings(body)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        if version not in {v.version for v in listed}:
            return _json({"error": f"{handler} {version} is not published"}, 409)
        current = next((h for h in guest.handlers() if h.name.lower() == handler.lower()), None)
        seq_no = 0 if current is None else current.seq_no + 1
        spec = HandlerSpec(
            name=handler,
            version=version,
            manifest_url=artifacts.manifest_url(handler),
            state="enabled",
            seq_no=seq_no,
            public_settings=public,
            protected_settings=protected,
        )
        incarnation = guest.set_handler(spec)
        log.info(
            "%s: %s %s enabled with seq %d (incarnation %s)",
            guest.name,
            handler,
            version,
            seq_no,
            incarnation,
        )
        return _json(
            {
                "vm": guest.name,
                "name": handler,
                "version": version,
                "seq_no": seq_no,
                "incarnation": incarnation,
            }
        )


def handler_json(spec: HandlerSpec) -> dict[str, Any]:
    """A goal-state handler as the control API shows it (no protected settings)."""
    return {
        "name": spec.name,
        "version": spec.version,
        "state": spec.state,
        "seq_no": spec.seq_no,
        "public_settings": dict(spec.public_settings),
    }


def _settings(body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    version = body.get("version")
    if not isinstance(version, str) or not version:
        raise ValueError("body must name the handler's version")
    public = body.get("public_settings")
    public = {} if public is None else public
    if not isinstance(public, dict):
        raise ValueError("public_settings must be a JSON object")
    protected = body.get("protected_settings")
    if protected is not None and not isinstance(protected, dict):
        raise ValueError("protected_settings must be a JSON object or null")
    return version, public, protected


def _body(request: Request) -> dict[str, Any]:
    try:
        raw = read_body(request, MAX_BODY)
    except BodyTooLarge as exc:
        raise ValueError(str(exc)) from exc
    try:
        payload = json.loads(raw or b"{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"request body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError("request body must be a JSON object")
    return payload


def _not_allowed(allowed: str) -> Response:
    response = _json({"error": f"method not allowed; use {allowed}"}, 405)
    response.headers["Allow"] = allowed
    return response


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(payload, sort_keys=True), status=status, content_type="application/json"
    )
