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
    POST /control/v1/vms/<name>/extensions/<handler>/uninstall
                                                 202 {"vm", "name", "incarnation"}
    GET  /control/v1/storage                     {"ready": bool, "account_url": str}
    GET  /control/v1/vms/<name>/disks            {"disks": [Disk], "ready": bool}
    POST /control/v1/vms/<name>/backups          202 Job (body: none or {})
    GET  /control/v1/vms/<name>/restore-points   {"restore_points": [RestorePoint]}
    GET  /control/v1/jobs[?vm=<name>]            {"jobs": [Job]}, newest first
    GET  /control/v1/jobs/<job_id>               Job

VM is :meth:`lab.platform.instance_view.GuestView.to_json`; Job, Disk and RestorePoint
are the ``to_json`` of :mod:`lab.platform.backup`. Errors are ``{"error": str}``: 404
for an unknown VM, job or handler, 400 for a body that is not a JSON object, 503 when
the fabric runs without a backup service.

Uninstall sets the handler's state to ``uninstall`` in the goal state, as deleting an
extension in the portal does; the agent then disables and removes it. The next backup
publishes it ``enabled`` again, which makes the agent reinstall it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from lab.platform.backup.service import BackupService
from lab.platform.guest_state import Fabric, GuestState
from lab.platform.http_util import BodyTooLarge, read_body

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

PREFIX = ("control", "v1")
# A backup request carries no options yet; anything bigger than this is not one.
MAX_BODY = 64 * 1024


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
    """WSGI app for port 8080. Construct with the lab's shared :class:`Fabric` and, in
    a fabric that runs jobs, its :class:`BackupService`."""

    def __init__(self, fabric: Fabric, backup: BackupService | None = None) -> None:
        self.fabric = fabric
        self.backup = backup

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
        if rest and rest[0] in ("storage", "jobs"):
            return self._backup_global(request, rest)
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
        if len(rest) == 3 and rest[0] == "extensions" and rest[2] == "uninstall":
            if request.method != "POST":
                return _not_allowed("POST")
            return self._uninstall(guest, rest[1])
        if rest in (("disks",), ("backups",), ("restore-points",)):
            return self._backup_vm(request, name, rest[0])
        return _error(404, f"no such resource: {request.path}")

    @staticmethod
    def _uninstall(guest: GuestState, handler_name: str) -> Response:
        handler = next(
            (h for h in guest.handlers() if h.name.lower() == handler_name.lower()), None
        )
        if handler is None:
            return _error(
                404, f"handler {handler_name!r} is not in the goal state of VM {guest.name!r}"
            )
        incarnation = guest.set_handler(replace(handler, state="uninstall"))
        return _json({"vm": guest.name, "name": handler.name, "incarnation": incarnation}, 202)

    # ------------------------------------------------------------------ backup

    def _backup_global(self, request: Request, rest: tuple[str, ...]) -> Response:
        backup = self.backup
        if backup is None:
            return _error(503, "this fabric runs no backup service")
        refused = self._get_only(request.method)
        if refused:
            return refused
        if rest == ("storage",):
            return _json(backup.storage_status())
        if rest == ("jobs",):
            vm = request.args.get("vm")
            if vm is not None and not backup.knows(vm):
                return _error(404, f"no VM named {vm!r} in lab {self.fabric.roster.lab!r}")
            return _json({"jobs": [j.to_json() for j in backup.jobs(vm)]})
        if len(rest) == 2 and rest[0] == "jobs":
            job = backup.job(rest[1])
            if job is None:
                return _error(404, f"no backup job {rest[1]!r}")
            return _json(job.to_json())
        return _error(404, f"no such resource: {request.path}")

    def _backup_vm(self, request: Request, vm: str, what: str) -> Response:
        backup = self.backup
        if backup is None:
            return _error(503, "this fabric runs no backup service")
        if what == "backups":
            if request.method != "POST":
                return _not_allowed("POST")
            problem = _backup_request_problem(request)
            if problem:
                return _error(400, problem)
            return _json(backup.start_backup(vm).to_json(), 202)
        refused = self._get_only(request.method)
        if refused:
            return refused
        if what == "disks":
            return _json(
                {
                    "disks": [d.to_json() for d in backup.disks(vm)],
                    "ready": backup.storage_status()["ready"],
                }
            )
        return _json({"restore_points": [p.to_json() for p in backup.restore_points(vm)]})


def _backup_request_problem(request: Request) -> str | None:
    """Why a backup request body is unacceptable: it must be empty or ``{}`` (an
    on-demand backup has no options in the lab yet; refusing unknown keys catches
    a caller that thinks otherwise)."""
    try:
        body = read_body(request, MAX_BODY)
    except BodyTooLarge as exc:
        return str(exc)
    if not body.strip():
        return None
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"request body is not JSON: {exc}"
    if not isinstance(payload, dict):
        return "request body must be a JSON object"
    if payload:
        return f"unknown backup options: {', '.join(sorted(map(str, payload)))}"
    return None
