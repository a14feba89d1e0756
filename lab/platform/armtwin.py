"""The ARM twin: the slice of Azure Resource Manager that ``azure-mgmt-compute`` uses.

Checks and runbooks diagnose a lab VM with the same Azure SDK calls they would make
against real Azure (VM get, instance view, power off / start / restart, list / get /
delete its extensions), so the twin answers those calls with ARM's URLs, JSON shapes,
error bodies and long-running operation protocol. What it reports is observed, never
configured: the guest agent's status, OS and extension statuses come from the fabric's
control API (what the real agent last reported to our WireServer), and so does the power
state, the fabric's one record of it (:mod:`lab.platform.power_states`): a power
operation of the twin stops or starts the guest's container, then records the outcome
there, and the host's watcher beside the twin (:mod:`lab.platform.host_power`) reports a
guest OS that halted, so, as on Azure, a VM shut down from inside shows
``PowerState/stopped``. The twin's power work and the watcher share one lock per VM.

This module is the WSGI app and its routing; the rest of the twin lives beside it:

    lab.platform.arm_fabric      the fabric's control API (FabricClient, HttpFabricClient)
    lab.platform.arm_power       power states and actions (PowerBackend, DockerPower)
    lab.platform.arm_extensions  extension names and the work of a delete
    lab.platform.arm_operations  long-running operations and their threads
    lab.platform.arm_documents   the ARM JSON documents

Two seams keep it testable without a lab: :class:`~lab.platform.arm_fabric.FabricClient`
(the fabric's control API; :class:`~lab.platform.arm_fabric.HttpFabricClient` is the real
one) and :class:`~lab.platform.arm_power.PowerBackend` (Docker;
:class:`~lab.platform.arm_power.DockerPower` is the real one). Tests pass fakes of both.

Runs inside its own container on Debian's Python: stdlib, Werkzeug (2.2 and 3.x) and
``docker`` only, and nothing from ``lab`` outside :mod:`lab.platform`.

Errors, all answered as ARM error bodies ``{"error": {"code", "message"}}``::

    ArmError            4xx with ARM's code (auth, api-version, not found)
    OperationConflict   409 OperationNotAllowed: the VM already has an operation running
    FabricError         502 BadGateway: the fabric's control API did not answer sensibly
    PowerError          not an HTTP error: the operation resource ends "Failed"
    OperationError      likewise, with Azure's code (e.g. VMExtensionProvisioningTimeout)

Routes (all under ``/subscriptions/<sub>``, all need ``api-version``)::

    GET    .../virtualMachines                          list VMs
    GET    .../virtualMachines/<vm>                     VM ($expand=instanceView)
    GET    .../virtualMachines/<vm>/instanceView        instance view
    POST   .../virtualMachines/<vm>/<powerOff|start|restart>       202 + operation
    GET    .../virtualMachines/<vm>/extensions          {"value": [extension]}
    GET    .../virtualMachines/<vm>/extensions/<name>   extension ($expand=instanceView)
    DELETE .../virtualMachines/<vm>/extensions/<name>   202 + operation; 204 if absent
    GET    /providers/Microsoft.Compute/locations/<loc>/operations/<id>
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from lab.platform.arm_documents import (
    EXTENSION_TYPE,
    VM_TYPE,
    JsonObject,
    error_document,
    extension_document,
    instance_view_document,
    operation_document,
    vm_document,
)
from lab.platform.arm_extensions import (
    EXTENSION_OPERATION_TIMEOUT,
    ExtensionDeletion,
    arm_name,
    find_extension,
    reported_extensions,
)
from lab.platform.arm_fabric import ExtensionReport, FabricClient, FabricError
from lab.platform.arm_operations import (
    Action,
    ExtensionDelete,
    Operation,
    OperationConflict,
    OperationError,
    OperationStore,
    run_in_background,
)
from lab.platform.arm_power import PowerAction, PowerBackend, platform_power_state
from lab.platform.host_power import VmLocks
from lab.platform.roster import GuestEntry, Roster

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_log = logging.getLogger(__name__)

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class ArmError(Exception):
    """A request ARM itself would refuse; carries the HTTP status and ARM error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_VMS = "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines"
_URLS = Map(
    [
        Rule(_VMS, endpoint="list", methods=["GET"]),
        Rule(f"{_VMS}/<vm>", endpoint="get", methods=["GET"]),
        Rule(f"{_VMS}/<vm>/instanceView", endpoint="instance_view", methods=["GET"]),
        Rule(
            f"{_VMS}/<vm>/<any({', '.join(a.value for a in PowerAction)}):act>",
            endpoint="power",
            methods=["POST"],
        ),
        Rule(f"{_VMS}/<vm>/extensions", endpoint="extensions", methods=["GET"]),
        Rule(f"{_VMS}/<vm>/extensions/<ext>", endpoint="extension", methods=["GET"]),
        Rule(f"{_VMS}/<vm>/extensions/<ext>", endpoint="delete_extension", methods=["DELETE"]),
        Rule(
            "/subscriptions/<sub>/providers/Microsoft.Compute/locations/<loc>/operations/<op_id>",
            endpoint="operation",
            methods=["GET"],
        ),
    ],
    strict_slashes=False,
    merge_slashes=False,
)

_Handler = Callable[[Request, dict[str, str]], Response]


class ArmTwin:
    """The WSGI application. Every answer is JSON; no input makes it answer 500."""

    def __init__(
        self,
        fabric: FabricClient,
        power: PowerBackend,
        token: str,
        *,
        retry_after_seconds: int = 1,
        operations: OperationStore | None = None,
        extension_timeout: Callable[[], float] = EXTENSION_OPERATION_TIMEOUT.lab_seconds,
        extension_poll_seconds: float = 1.0,
        power_locks: VmLocks | None = None,
    ) -> None:
        if not token:
            raise ValueError("the ARM twin needs a non-empty bearer token")
        self._fabric = fabric
        self._power = power
        self._token = token.encode()
        self._retry_after = str(retry_after_seconds)
        self.operations = operations or OperationStore()
        self._extension_timeout = extension_timeout
        self._extension_poll = extension_poll_seconds
        # Shared with the host's watcher: a power operation and a halt report never overlap.
        self.power_locks = power_locks or VmLocks()
        self._handlers: dict[str, _Handler] = {
            "list": self._list,
            "get": self._get,
            "instance_view": self._instance_view,
            "power": self._power_action,
            "extensions": self._extensions,
            "extension": self._extension,
            "delete_extension": self._delete_extension,
            "operation": self._operation,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        started = time.monotonic()
        response = self._respond(request)
        _log.info(
            '%s "%s %s" %d %.0fms',
            request.remote_addr,
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)

    # -- dispatch

    def _respond(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            endpoint, args = _URLS.bind_to_environ(request.environ).match()
            _require_api_version(request)
            return self._handlers[str(endpoint)](request, {k: str(v) for k, v in args.items()})
        except ArmError as exc:
            return _error(exc.status, exc.code, exc.message)
        except MethodNotAllowed as exc:
            response = _error(
                405, "MethodNotAllowed", f"The method {request.method} is not allowed here."
            )
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
            return response
        except HTTPException:
            return _error(404, "NotFound", f"No resource or action at {request.path!r}.")
        except FabricError as exc:
            _log.warning("fabric unavailable: %s", exc)
            return _error(502, "BadGateway", f"The lab fabric did not answer: {exc}")
        except Exception:
            _log.exception("unexpected error answering %s %s", request.method, request.path)
            return _error(500, "InternalServerError", "The ARM twin failed unexpectedly.")

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is not a bearer token.",
            )
        if not hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), self._token):
            raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")

    # -- handlers

    def _list(self, request: Request, args: dict[str, str]) -> Response:
        roster = self._scope(args)
        expand = _wants_instance_view(request)
        value = [self._vm_document(roster, guest, expand) for guest in roster.guests]
        return _json(200, {"value": value})

    def _get(self, request: Request, args: dict[str, str]) -> Response:
        roster = self._scope(args)
        guest = _guest(roster, args["vm"])
        return _json(200, self._vm_document(roster, guest, _wants_instance_view(request)))

    def _instance_view(self, request: Request, args: dict[str, str]) -> Response:
        roster = self._scope(args)
        return _json(200, self._instance_view_document(_guest(roster, args["vm"])))

    def _power_action(self, request: Request, args: dict[str, str]) -> Response:
        roster = self._scope(args)
        guest = _guest(roster, args["vm"])
        action = PowerAction(args["act"])
        op = self._begin(guest, action)
        run_in_background(self.operations, op, partial(self._power_work, guest, action))
        return self._accepted(request, roster, op)

    def _power_work(self, guest: GuestEntry, action: PowerAction) -> None:
        """Stop, start or restart the guest, then record the platform's new power state."""
        with self.power_locks.held(guest.name):
            self._power.act(guest.container, action)
            try:
                self._fabric.set_power_state(guest.name, action.outcome.value)
            except FabricError as exc:
                raise OperationError(
                    f"The VM was {action.outcome.value} but the lab fabric did not record "
                    f"it: {exc}",
                    "BadGateway",
                ) from exc

    def _extensions(self, request: Request, args: dict[str, str]) -> Response:
        roster = self._scope(args)
        guest = _guest(roster, args["vm"])
        report = self._fabric.vm(guest.name)
        expand = _wants_instance_view(request)
        value = [
            self._extension_document(roster, guest, ext, expand)
            for ext in reported_extensions(report)
        ]
        return _json(200, {"value": value})

    def _extension(self, request: Request, args: dict[str, str]) -> Response:
        roster = self._scope(args)
        guest = _guest(roster, args["vm"])
        ext = find_extension(self._fabric.vm(guest.name), args["ext"])
        if ext is None:
            raise _extension_not_found(roster, guest, args["ext"])
        return _json(
            200, self._extension_document(roster, guest, ext, _wants_instance_view(request))
        )

    def _delete_extension(self, request: Request, args: dict[str, str]) -> Response:
        """ARM's DELETE: 202 + operation while the agent uninstalls; 204 when there is
        nothing to delete (ARM deletes are idempotent)."""
        roster = self._scope(args)
        guest = _guest(roster, args["vm"])
        ext = find_extension(self._fabric.vm(guest.name), args["ext"])
        if ext is None:
            return Response(status=204)
        name = arm_name(ext.name)
        op = self._begin(guest, ExtensionDelete(name=name, handler=ext.name))
        work = ExtensionDeletion(
            fabric=self._fabric,
            vm=guest.name,
            name=name,
            handler=ext.name,
            timeout_seconds=self._extension_timeout(),
            poll_seconds=self._extension_poll,
        )
        run_in_background(self.operations, op, work)
        return self._accepted(request, roster, op)

    def _operation(self, request: Request, args: dict[str, str]) -> Response:
        roster = self._subscription(args["sub"])
        op = self.operations.get(args["op_id"])
        if op is None or args["loc"].lower() != roster.location.lower():
            raise ArmError(404, "NotFound", f"Operation {args['op_id']!r} was not found.")
        if request.args.get("monitor", "").lower() == "true":
            return self._location_monitor(op)
        response = _json(200, operation_document(op))
        if op.ended is None:
            response.headers["Retry-After"] = self._retry_after
        return response

    # -- helpers

    def _begin(self, guest: GuestEntry, action: Action) -> Operation:
        """Record a new operation on ``guest``; 409 while another one runs, as in Azure."""
        try:
            return self.operations.begin(guest.name, action)
        except OperationConflict as exc:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation '{action.value}' is not allowed on VM '{guest.name}' "
                f"while operation '{exc.running.action.value}' is in progress.",
            ) from exc

    def _accepted(self, request: Request, roster: Roster, op: Operation) -> Response:
        """ARM's 202 for a long-running operation: where to poll, and how often."""
        monitor = self._operation_url(request, roster, op)
        response = Response(status=202)
        response.headers["Azure-AsyncOperation"] = monitor
        response.headers["Location"] = monitor + "&monitor=true"
        response.headers["Retry-After"] = self._retry_after
        return response

    def _extension_document(
        self, roster: Roster, guest: GuestEntry, ext: ExtensionReport, expand: bool
    ) -> JsonObject:
        running = self.operations.running(guest.name)
        deleting = (
            running is not None
            and isinstance(running.action, ExtensionDelete)
            and running.action.handler.lower() == ext.name.lower()
        )
        return extension_document(roster, guest.name, ext, deleting=deleting, expand=expand)

    def _location_monitor(self, op: Operation) -> Response:
        """The ``Location`` flavour: 202 while running, 200 when done, ARM error if failed."""
        if op.ended is None:
            response = Response(status=202)
            response.headers["Retry-After"] = self._retry_after
            return response
        if op.error is not None:
            return _error(409, op.error_code, op.error)
        return Response(status=200)

    def _vm_document(self, roster: Roster, guest: GuestEntry, expand: bool) -> JsonObject:
        busy = self.operations.running(guest.name) is not None
        view = self._instance_view_document(guest) if expand else None
        return vm_document(roster, guest, busy, view)

    def _instance_view_document(self, guest: GuestEntry) -> JsonObject:
        running = self.operations.running(guest.name)
        report = self._fabric.vm(guest.name)
        if running is not None and isinstance(running.action, PowerAction):
            power = running.action.transition
        else:
            power = platform_power_state(report.power_state if report else None)
        return instance_view_document(report, power, running is not None, datetime.now(UTC))

    def _subscription(self, sub: str) -> Roster:
        roster = self._fabric.roster()
        if sub.lower() != roster.subscription_id.lower():
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
            )
        return roster

    def _scope(self, args: Mapping[str, str]) -> Roster:
        roster = self._subscription(args["sub"])
        if args["rg"].lower() != roster.resource_group.lower():
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{args['rg']}' could not be found."
            )
        return roster

    @staticmethod
    def _operation_url(request: Request, roster: Roster, op: Operation) -> str:
        query = urlencode({"api-version": request.args["api-version"]})
        return (
            f"{request.host_url.rstrip('/')}/subscriptions/{roster.subscription_id}"
            f"/providers/Microsoft.Compute/locations/{quote(roster.location)}"
            f"/operations/{op.id}?{query}"
        )


def create_app(fabric: FabricClient, power: PowerBackend, token: str) -> ArmTwin:
    """The twin for a lab: reads ``fabric``, drives ``power``, accepts only ``token``."""
    return ArmTwin(fabric, power, token)


def _guest(roster: Roster, name: str) -> GuestEntry:
    """The roster entry for ``name``; VM names are case-insensitive in Azure."""
    wanted = name.lower()
    guest = next((g for g in roster.guests if g.name.lower() == wanted), None)
    if guest is None:
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{VM_TYPE}/{name}' under resource group '{roster.resource_group}' "
            "was not found.",
        )
    return guest


def _extension_not_found(roster: Roster, guest: GuestEntry, name: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{EXTENSION_TYPE}/{guest.name}/{name}' under resource group "
        f"'{roster.resource_group}' was not found.",
    )


def _require_api_version(request: Request) -> None:
    version = request.args.get("api-version", "")
    if not version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not _API_VERSION.match(version):
        raise ArmError(
            400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid."
        )


def _wants_instance_view(request: Request) -> bool:
    return request.args.get("$expand", "").lower() == "instanceview"


def _json(status: int, body: JsonObject) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, error_document(code, message))
