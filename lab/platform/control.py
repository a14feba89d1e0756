"""The fabric's control API (port 8080): how the CLI and the ARM twin see the platform.

Guests never call this; the snaplab CLI on the Docker host and the ARM twin do, to read
what the platform believes about each VM (the instance view), to push a new goal state,
and to do what the platform itself does (power state, backup policies, the extension
versions it offers). JSON only, versioned under ``/control/v1`` so the CLI and a fabric
image built from another commit fail loudly rather than misread each other.

Routes::

    GET  /control/v1/health                      {"ok": true, "lab": str}
    GET  /control/v1/roster                      the roster JSON
    GET  /control/v1/vms                         {"lab": str, "vms": [VM]}
    GET  /control/v1/vms/<name>                  VM
    GET  /control/v1/vms/<name>/status-raw       the last status JSON the agent sent
    POST /control/v1/vms/<name>/incarnation      {"name": str, "incarnation": str}
    POST /control/v1/vms/<name>/extensions/<handler>/uninstall
                                                 202 {"vm", "name", "incarnation"}
    GET  /control/v1/vms/<name>/power            {"vm", "power_state"}
    PUT  /control/v1/vms/<name>/power            body {"power_state": "running"|"stopped"|
                                                  "deallocated"}
    POST /control/v1/vms/<name>/power/halted     {"vm", "power_state", "taken": bool}
    GET|PUT /control/v1/vms/<name>/power/view    {"vm", "stale": bool}; PUT body {"stale": bool}
    GET  /control/v1/storage                     {"ready": bool, "account_url": str}
    GET  /control/v1/vms/<name>/disks            {"disks": [Disk], "ready": bool}
    POST /control/v1/vms/<name>/backups          202 Job (body: none or {})
    GET  /control/v1/vms/<name>/restore-points   {"restore_points": [RestorePoint]}
    GET  /control/v1/jobs[?vm=<name>]            {"jobs": [Job]}, newest first
    GET  /control/v1/jobs/<job_id>               Job
    GET  /control/v1/policies                    {"azure_now", "time_scale",
                                                  "host_snapshot_slots", "policies": [Policy]}
    PUT  /control/v1/policies/<policy>           body {"schedule_run_time": "HH:MM"} -> Policy
    GET|PUT|DELETE /control/v1/vms/<name>/policy {"vm", "policy"}; PUT body {"policy": str}
    GET  /control/v1/extensions/<handler>/versions
                                                 {"handler", "versions": [Version]}
    POST /control/v1/extensions/<handler>/versions
                                                 body {"version", "package": "corrupt"|"missing"}
                                                 201 Version
    DELETE /control/v1/extensions/<handler>/versions/<version>
                                                 200 Version (withdrawn)

VM is :meth:`lab.platform.instance_view.GuestView.to_json` plus the platform's
``power_state``; Job, Disk, RestorePoint and Policy are the JSON of
:mod:`lab.platform.backup`; Version is
:meth:`lab.platform.artifacts.PublishedVersion.to_json`. Errors are ``{"error": str}``:
404 for an unknown VM, job, policy, handler or version, 400 for a body that is not the
JSON object a route expects, 409 for a version that cannot be published or withdrawn,
503 when the fabric runs without a backup service.

Uninstall sets the handler's state to ``uninstall`` in the goal state, as deleting an
extension in the portal does; the agent then disables and removes it. The next backup
publishes it ``enabled`` again, which makes the agent reinstall it.

The power state is the platform's record (:mod:`lab.platform.power_states`): the ARM
twin sets it when it powers a VM off, starts or restarts it (``PUT .../power``), and the
host reports a guest OS that halted (``POST .../power/halted``: the VM is then
``stopped``, as on Azure after a shutdown from inside). ``.../power/view`` makes the
platform's view of a VM stale (host reports dropped until the platform next powers the
VM itself): the platform fault behind the 2016 article's "status not reflected".

Publishing a handler version here only ever publishes a *broken* one (the lab's good
packages come from the image): it is how the lab makes "the extension fails to update";
withdrawing it is the publisher's fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from lab.platform.artifacts import VersionError
from lab.platform.backup.policy import PolicyError
from lab.platform.backup.service import BackupService
from lab.platform.guest_state import POWER_STATES, Fabric, GuestState
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
                    "vms": [self._vm_json(g) for g in self.fabric.guests()],
                }
            )
        if len(rest) >= 2 and rest[0] == "vms":
            return self._vm(request, rest[1], rest[2:])
        if rest and rest[0] in ("storage", "jobs"):
            return self._backup_global(request, rest)
        if rest and rest[0] == "policies":
            return self._policies(request, rest[1:])
        if len(rest) >= 3 and rest[0] == "extensions" and rest[2] == "versions":
            return self._versions(request, rest[1], rest[3:])
        return _error(404, f"no such resource: {request.path}")

    def _vm_json(self, guest: GuestState) -> dict[str, Any]:
        """The instance-view opinion of a VM, with the platform's power state."""
        return {**guest.view().to_json(), "power_state": self.fabric.power.get(guest.name)}

    @staticmethod
    def _get_only(method: str) -> Response | None:
        return None if method in ("GET", "HEAD") else _not_allowed("GET")

    def _vm(self, request: Request, name: str, rest: tuple[str, ...]) -> Response:
        guest = self.fabric.guest(name)
        if guest is None:
            return _error(404, f"no VM named {name!r} in lab {self.fabric.roster.lab!r}")
        if rest == ():
            return self._get_only(request.method) or _json(self._vm_json(guest))
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
        if rest == ("power",):
            return self._power(request, guest)
        if rest == ("power", "halted"):
            return self._halted(request, guest)
        if rest == ("power", "view"):
            return self._power_view(request, guest)
        if rest == ("policy",):
            return self._protection(request, name)
        return _error(404, f"no such resource: {request.path}")

    # ------------------------------------------------------------------ power

    def _power(self, request: Request, guest: GuestState) -> Response:
        if request.method == "PUT":
            body = _json_object(request)
            if isinstance(body, str):
                return _error(400, body)
            state = body.get("power_state")
            if state not in POWER_STATES:
                return _error(400, f"power_state must be one of {', '.join(POWER_STATES)}")
            self.fabric.power.set(guest.name, str(state))
            log.info("power state of %s set to %s", guest.name, state)
        elif request.method not in ("GET", "HEAD"):
            return _not_allowed("GET, PUT")
        return _json({"vm": guest.name, "power_state": self.fabric.power.get(guest.name)})

    def _halted(self, request: Request, guest: GuestState) -> Response:
        """The host saw the VM's OS halt."""
        if request.method != "POST":
            return _not_allowed("POST")
        outcome = self.fabric.power.observe_halt(guest.name)
        return _json({"vm": guest.name, "power_state": outcome.power_state, "taken": outcome.taken})

    def _power_view(self, request: Request, guest: GuestState) -> Response:
        if request.method == "PUT":
            body = _json_object(request)
            if isinstance(body, str):
                return _error(400, body)
            stale = body.get("stale")
            if not isinstance(stale, bool):
                return _error(400, 'body must be {"stale": true|false}')
            self.fabric.power.set_stale(guest.name, stale)
        elif request.method not in ("GET", "HEAD"):
            return _not_allowed("GET, PUT")
        return _json({"vm": guest.name, "stale": self.fabric.power.is_stale(guest.name)})

    # ------------------------------------------------------------------ policies

    def _policies(self, request: Request, rest: tuple[str, ...]) -> Response:
        backup = self.backup
        if backup is None:
            return _error(503, "this fabric runs no backup service")
        if rest == ():
            return self._get_only(request.method) or _json(backup.policies())
        if len(rest) != 1:
            return _error(404, f"no such resource: {request.path}")
        if request.method != "PUT":
            return _not_allowed("PUT")
        body = _json_object(request)
        if isinstance(body, str):
            return _error(400, body)
        try:
            return _json(backup.set_policy(rest[0], str(body.get("schedule_run_time", ""))))
        except PolicyError as exc:
            return _error(400, str(exc))

    def _protection(self, request: Request, vm: str) -> Response:
        backup = self.backup
        if backup is None:
            return _error(503, "this fabric runs no backup service")
        if request.method in ("GET", "HEAD"):
            return _json(backup.protection(vm))
        if request.method == "DELETE":
            return _json(backup.unprotect(vm))
        if request.method != "PUT":
            return _not_allowed("GET, PUT, DELETE")
        body = _json_object(request)
        if isinstance(body, str):
            return _error(400, body)
        policy = body.get("policy")
        if not isinstance(policy, str) or not policy:
            return _error(400, 'body must name a policy: {"policy": NAME}')
        try:
            return _json(backup.protect(vm, policy))
        except LookupError as exc:
            return _error(404, str(exc))

    # ------------------------------------------------------------------ extension versions

    def _versions(self, request: Request, handler: str, rest: tuple[str, ...]) -> Response:
        artifacts = self.fabric.artifacts
        if not artifacts.versions(handler):
            return _error(404, f"the platform publishes no handler {handler!r}")
        if rest == ():
            if request.method == "POST":
                return self._publish_broken(request, handler)
            if request.method not in ("GET", "HEAD"):
                return _not_allowed("GET, POST")
            return _json(
                {"handler": handler, "versions": [v.to_json() for v in artifacts.versions(handler)]}
            )
        if len(rest) != 1:
            return _error(404, f"no such resource: {request.path}")
        if request.method != "DELETE":
            return _not_allowed("DELETE")
        try:
            withdrawn = artifacts.withdraw(handler, rest[0])
        except KeyError:
            return _error(404, f"{handler} {rest[0]} is not published")
        except VersionError as exc:
            return _error(409, str(exc))
        log.info("withdrew %s %s (%s package)", handler, withdrawn.version, withdrawn.package)
        return _json(withdrawn.to_json())

    def _publish_broken(self, request: Request, handler: str) -> Response:
        body = _json_object(request)
        if isinstance(body, str):
            return _error(400, body)
        version, package = body.get("version"), body.get("package")
        if not isinstance(version, str) or not isinstance(package, str):
            return _error(400, 'body must be {"version": str, "package": "corrupt"|"missing"}')
        try:
            published = self.fabric.artifacts.publish_broken(handler, version, package)
        except VersionError as exc:
            return _error(409 if "already" in str(exc) else 400, str(exc))
        log.warning("published %s %s with a %s package", handler, version, package)
        return _json(published.to_json(), 201)

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


def _json_object(request: Request) -> dict[str, Any] | str:
    """The request's JSON object body, or why it is not one."""
    try:
        body = read_body(request, MAX_BODY)
        payload = json.loads(body)
    except BodyTooLarge as exc:
        return str(exc)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"request body is not JSON: {exc}"
    if not isinstance(payload, dict):
        return "request body must be a JSON object"
    return payload


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
