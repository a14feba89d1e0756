"""The ARM twin: the slice of Azure Resource Manager that ``azure-mgmt-compute`` uses.

Checks and runbooks diagnose a lab VM with the same Azure SDK calls they would make
against real Azure (VM get, instance view, power off / start / restart), so the twin
answers those calls with ARM's URLs, JSON shapes, error bodies and long-running
operation protocol. What it reports is observed, never configured: the guest agent's
status, OS and extension statuses come from the fabric's control API (what the real
agent last reported to our WireServer), and the power state from the guest container's
Docker state.

Two seams keep it testable without a lab: :class:`FabricReader` (the fabric's control
API; :class:`HttpFabricReader` is the real one) and :class:`PowerBackend` (Docker;
:class:`DockerPower` is the real one). Tests pass fakes of both.

Runs inside its own container on Debian's Python: stdlib, Werkzeug (2.2 and 3.x) and
``docker`` only, and nothing from ``lab`` outside :mod:`lab.platform`.

Errors, all answered as ARM error bodies ``{"error": {"code", "message"}}``::

    ArmError            4xx with ARM's code (auth, api-version, not found)
    OperationConflict   409 OperationNotAllowed: the VM already has a power operation running
    FabricError         502 BadGateway: the fabric's control API did not answer sensibly
    PowerError          not an HTTP error: the operation resource ends "Failed"
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from lab.platform.roster import GuestEntry, Roster

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_log = logging.getLogger(__name__)

JsonObject = dict[str, object]

VM_TYPE = "Microsoft.Compute/virtualMachines"
VM_SIZE = "Standard_D2s_v3"

# What Azure shows for the guest agent. The "not updated" text is the platform's own
# wording for a stale status blob; the "not found" text is what it shows for a VM whose
# agent never uploaded one (seen on real VMs, see WALinuxAgent issue #652).
AGENT_READY_MESSAGE = "Guest Agent is running"
AGENT_STALE_MESSAGE = "VM status blob is found but not updated for 10 minutes after last heartbeat."
AGENT_NEVER_REPORTED_MESSAGE = "VM status blob not found."
AGENT_UNKNOWN_VERSION = "Unknown"

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_VM_ID_NAMESPACE = uuid.UUID("6f1c7c2e-4a8e-5d4f-9a57-736e61706c61")  # fixed: vmIds stay stable


# --------------------------------------------------------------------------- errors


class ArmError(Exception):
    """A request ARM itself would refuse; carries the HTTP status and ARM error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class FabricError(Exception):
    """The fabric's control API was unreachable or answered something we cannot read."""


class PowerError(Exception):
    """Docker could not carry out a power operation on a guest container."""


class OperationConflict(Exception):
    """A VM already has a power operation running; ARM refuses a second one (409)."""

    def __init__(self, running: Operation) -> None:
        super().__init__(f"{running.action.value} is in progress on {running.vm}")
        self.running = running


# --------------------------------------------------------------------------- fabric view


@dataclass(frozen=True)
class AgentReport:
    """The guest agent as the fabric last saw it."""

    ready: bool
    version: str | None = None
    message: str = ""
    last_report: str | None = None


@dataclass(frozen=True)
class OsReport:
    """Host name and OS the agent put in its status (``guestOSInfo``)."""

    computer_name: str | None
    name: str | None
    version: str | None


@dataclass(frozen=True)
class ExtensionReport:
    """One extension handler and the status its last operation wrote."""

    name: str
    version: str | None = None
    handler_status: str | None = None
    status: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class FabricVm:
    """What the fabric knows about one guest from its agent's reports."""

    name: str
    agent: AgentReport
    os: OsReport | None = None
    extensions: tuple[ExtensionReport, ...] = ()


class FabricReader(Protocol):
    """Read access to the fabric's control API (``/control/v1``)."""

    def roster(self) -> Roster:
        """The lab roster; raises :class:`FabricError` when it cannot be read."""
        ...

    def vm(self, name: str) -> FabricVm | None:
        """One guest's reports, or None when the fabric has none for it."""
        ...


class HttpFabricReader:
    """:class:`FabricReader` over HTTP, with urllib so the twin needs no extra package."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        # The fabric is a lab address; never send it through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def roster(self) -> Roster:
        text = self._get("/control/v1/roster")
        if text is None:
            raise FabricError("the fabric has no roster")
        try:
            return Roster.from_json(text)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise FabricError(f"the fabric's roster is not valid: {exc}") from exc

    def vm(self, name: str) -> FabricVm | None:
        text = self._get(f"/control/v1/vms/{quote(name, safe='')}")
        if text is None:
            return None
        try:
            return parse_fabric_vm(json.loads(text))
        except ValueError as exc:
            raise FabricError(f"the fabric's report for {name!r} is not valid: {exc}") from exc

    def _get(self, path: str) -> str | None:
        url = self._base + path
        try:
            with self._opener.open(url, timeout=self._timeout) as response:
                body: bytes = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise FabricError(f"GET {url} answered HTTP {exc.code}") from exc
        except OSError as exc:  # URLError, timeouts, refused connections
            raise FabricError(f"GET {url} failed: {exc}") from exc
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FabricError(f"GET {url} answered non-UTF-8 text") from exc


def parse_fabric_vm(raw: object) -> FabricVm:
    """Read one VM document of the control API; raises ValueError on a wrong shape."""
    doc = _object(raw, "VM")
    name = _text(doc, "name")
    if not name:
        raise ValueError("VM has no name")
    agent = _object(_or(doc.get("agent"), {}), "agent")
    os_doc = doc.get("os")
    extensions = _or(doc.get("extensions"), [])
    if not isinstance(extensions, list):
        raise ValueError("extensions is not a list")
    return FabricVm(
        name=name,
        agent=AgentReport(
            ready=agent.get("status") == "Ready",
            version=_text(agent, "version"),
            message=_text(agent, "message") or "",
            last_report=_text(agent, "last_report"),
        ),
        os=None if os_doc is None else _parse_os(os_doc),
        extensions=tuple(e for e in map(_parse_extension, extensions) if e is not None),
    )


def _parse_os(raw: object) -> OsReport:
    doc = _object(raw, "os")
    return OsReport(
        computer_name=_text(doc, "computer_name"),
        name=_text(doc, "name"),
        version=_text(doc, "version"),
    )


def _parse_extension(raw: object) -> ExtensionReport | None:
    """One extension, or None for a nameless one (nothing in ARM could refer to it)."""
    doc = _object(raw, "extension")
    name = _text(doc, "name")
    if not name:
        return None
    return ExtensionReport(
        name=name,
        version=_text(doc, "version"),
        handler_status=_text(doc, "handler_status"),
        status=_text(doc, "status"),
        code=_text(doc, "code"),
        message=_text(doc, "message"),
    )


def _or(value: object, default: object) -> object:
    """``default`` for a missing or null field (unlike ``or``, keeps wrong-typed values)."""
    return default if value is None else value


def _object(raw: object, what: str) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        raise ValueError(f"{what} is not a JSON object")
    return raw


def _text(doc: Mapping[str, object], key: str) -> str | None:
    """A scalar field as text (codes may come as numbers); None when absent or null."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{key} is not a scalar")
    return str(value)


# --------------------------------------------------------------------------- power


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


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    """One long-running power operation, as its ARM operation resource reports it."""

    id: str
    vm: str
    action: PowerAction
    started: datetime
    ended: datetime | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        if self.ended is None:
            return "InProgress"
        return "Failed" if self.error is not None else "Succeeded"


class OperationStore:
    """The power operations of this twin: at most one running per VM, a bounded history."""

    def __init__(self, keep: int = 256) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._ops: OrderedDict[str, Operation] = OrderedDict()

    def begin(self, vm: str, action: PowerAction) -> Operation:
        """Record a new operation; raises :class:`OperationConflict` if ``vm`` is busy."""
        with self._lock:
            running = self._running(vm)
            if running is not None:
                raise OperationConflict(running)
            op = Operation(id=str(uuid.uuid4()), vm=vm, action=action, started=_now())
            self._ops[op.id] = op
            while len(self._ops) > self._keep:
                oldest = next(iter(self._ops.values()))
                if oldest.ended is None:
                    break  # never forget a running operation
                self._ops.popitem(last=False)
            return op

    def finish(self, op_id: str, error: str | None = None) -> None:
        with self._lock:
            op = self._ops.get(op_id)
            if op is not None:
                self._ops[op_id] = replace(op, ended=_now(), error=error)

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)

    def running(self, vm: str) -> Operation | None:
        with self._lock:
            return self._running(vm)

    def _running(self, vm: str) -> Operation | None:
        return next((o for o in self._ops.values() if o.vm == vm and o.ended is None), None)


# --------------------------------------------------------------------------- ARM documents


def vm_id(lab: str, name: str) -> str:
    """The VM's ``vmId``: stable across twin restarts, unique per lab and VM."""
    return str(uuid.uuid5(_VM_ID_NAMESPACE, f"{lab}/{name}"))


def vm_resource_id(roster: Roster, name: str) -> str:
    return (
        f"/subscriptions/{roster.subscription_id}/resourceGroups/{roster.resource_group}"
        f"/providers/{VM_TYPE}/{name}"
    )


def vm_document(
    roster: Roster, guest: GuestEntry, busy: bool, instance_view: JsonObject | None = None
) -> JsonObject:
    """The VM resource as ``GET .../virtualMachines/{vm}`` returns it."""
    properties: JsonObject = {
        "vmId": vm_id(roster.lab, guest.name),
        "hardwareProfile": {"vmSize": VM_SIZE},
        "storageProfile": {
            "osDisk": {"osType": "Linux", "name": f"{guest.name}-osdisk", "createOption": "Attach"}
        },
        "osProfile": {
            "computerName": guest.name,
            "linuxConfiguration": {"provisionVMAgent": True},
        },
        "provisioningState": "Updating" if busy else "Succeeded",
    }
    if instance_view is not None:
        properties["instanceView"] = instance_view
    return {
        "id": vm_resource_id(roster, guest.name),
        "name": guest.name,
        "type": VM_TYPE,
        "location": roster.location,
        "properties": properties,
    }


def instance_view_document(
    report: FabricVm | None, power: PowerState, busy: bool, now: datetime
) -> JsonObject:
    """The instance view: agent and extension statuses as last reported, and power state."""
    view: JsonObject = {}
    if report is not None and report.os is not None:
        view.update(
            _without_none(
                computerName=report.os.computer_name,
                osName=report.os.name,
                osVersion=report.os.version,
            )
        )
    view["vmAgent"] = _agent_view(report, now)
    view["extensions"] = [_extension_view(e) for e in report.extensions] if report else []
    provisioning = _status("ProvisioningState/succeeded", "Info", "Provisioning succeeded")
    if busy:
        provisioning = _status("ProvisioningState/updating", "Info", "Updating")
    view["statuses"] = [provisioning, _status(f"PowerState/{power.value}", "Info", power.display)]
    return view


def _agent_view(report: FabricVm | None, now: datetime) -> JsonObject:
    """``vmAgent`` as Azure shows it: the agent's own status while fresh, else "Not Ready".

    The fabric decides freshness (it knows when the last status arrived); a report it
    calls Not Ready is shown with the platform's stale wording and an unknown version,
    because that is all Azure itself can say about an agent that stopped reporting.
    """
    agent = report.agent if report else None
    if agent is None or not agent.ready:
        message = AGENT_NEVER_REPORTED_MESSAGE
        if agent is not None and agent.last_report is not None:
            message = AGENT_STALE_MESSAGE
        not_ready = _status("ProvisioningState/Unavailable", "Warning", "Not Ready", message)
        not_ready["time"] = now.isoformat()
        return {"vmAgentVersion": AGENT_UNKNOWN_VERSION, "statuses": [not_ready]}
    ready = _status(
        "ProvisioningState/succeeded", "Info", "Ready", agent.message or AGENT_READY_MESSAGE
    )
    if agent.last_report is not None:
        ready["time"] = agent.last_report
    handlers = [_handler_view(e) for e in report.extensions] if report else []
    return {
        "vmAgentVersion": agent.version or AGENT_UNKNOWN_VERSION,
        "statuses": [ready],
        "extensionHandlers": handlers,
    }


def _handler_view(ext: ExtensionReport) -> JsonObject:
    if ext.handler_status == "Ready":
        status = _status("ProvisioningState/succeeded", "Info", "Ready")
    else:
        status = _status(
            f"ProvisioningState/failed/{ext.code or 0}", "Error", "Not Ready", ext.message
        )
    return _without_none(type=ext.name, typeHandlerVersion=ext.version, status=status)


# The extension's own status file (transitioning|warning|error|success) mapped to the
# (code, level, displayStatus) of the instance view's extension status.
_EXTENSION_STATUS = {
    "success": ("ProvisioningState/succeeded", "Info", "Provisioning succeeded"),
    "warning": ("ProvisioningState/succeeded", "Warning", "Provisioning succeeded"),
    "transitioning": ("ProvisioningState/transitioning", "Info", "Transitioning"),
}


def _extension_view(ext: ExtensionReport) -> JsonObject:
    if ext.status == "error":
        code, level, display = (
            f"ProvisioningState/failed/{ext.code or 0}",
            "Error",
            "Provisioning failed",
        )
    else:
        code, level, display = _EXTENSION_STATUS.get(
            ext.status or "transitioning", _EXTENSION_STATUS["transitioning"]
        )
    return _without_none(
        name=ext.name,
        type=ext.name,
        typeHandlerVersion=ext.version,
        statuses=[_status(code, level, display, ext.message)],
    )


def _status(code: str, level: str, display: str, message: str | None = None) -> JsonObject:
    return _without_none(code=code, level=level, displayStatus=display, message=message)


def _without_none(**fields: object) -> JsonObject:
    return {k: v for k, v in fields.items() if v is not None}


def operation_document(op: Operation) -> JsonObject:
    """An ARM operation resource (what ``Azure-AsyncOperation`` points at)."""
    doc: JsonObject = {"name": op.id, "status": op.status, "startTime": op.started.isoformat()}
    if op.ended is not None:
        doc["endTime"] = op.ended.isoformat()
    if op.error is not None:
        doc["error"] = {"code": "OperationFailed", "message": op.error}
    return doc


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- WSGI app

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
        fabric: FabricReader,
        power: PowerBackend,
        token: str,
        *,
        retry_after_seconds: int = 1,
        operations: OperationStore | None = None,
    ) -> None:
        if not token:
            raise ValueError("the ARM twin needs a non-empty bearer token")
        self._fabric = fabric
        self._power = power
        self._token = token.encode()
        self._retry_after = str(retry_after_seconds)
        self.operations = operations or OperationStore()
        self._handlers: dict[str, _Handler] = {
            "list": self._list,
            "get": self._get,
            "instance_view": self._instance_view,
            "power": self._power_action,
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
        try:
            op = self.operations.begin(guest.name, action)
        except OperationConflict as exc:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation '{action.value}' is not allowed on VM '{guest.name}' "
                f"while operation '{exc.running.action.value}' is in progress.",
            ) from exc
        threading.Thread(
            target=self._run, args=(op, guest.container), name=f"arm-{op.id}", daemon=True
        ).start()
        monitor = self._operation_url(request, roster, op)
        response = Response(status=202)
        response.headers["Azure-AsyncOperation"] = monitor
        response.headers["Location"] = monitor + "&monitor=true"
        response.headers["Retry-After"] = self._retry_after
        return response

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

    def _location_monitor(self, op: Operation) -> Response:
        """The ``Location`` flavour: 202 while running, 200 when done, ARM error if failed."""
        if op.ended is None:
            response = Response(status=202)
            response.headers["Retry-After"] = self._retry_after
            return response
        if op.error is not None:
            return _error(409, "OperationFailed", op.error)
        return Response(status=200)

    def _run(self, op: Operation, container: str) -> None:
        """Carry out a power operation in the background and record how it ended."""
        error: str | None = None
        try:
            self._power.act(container, op.action)
        except PowerError as exc:
            error = str(exc)
        except Exception as exc:  # the operation must end, whatever went wrong
            _log.exception("power operation %s on %s failed", op.action.value, op.vm)
            error = f"Unexpected failure: {exc}"
        self.operations.finish(op.id, error)
        _log.info("operation %s (%s %s) ended: %s", op.id, op.action.value, op.vm, error or "ok")

    def _vm_document(self, roster: Roster, guest: GuestEntry, expand: bool) -> JsonObject:
        busy = self.operations.running(guest.name) is not None
        view = self._instance_view_document(guest) if expand else None
        return vm_document(roster, guest, busy, view)

    def _instance_view_document(self, guest: GuestEntry) -> JsonObject:
        running = self.operations.running(guest.name)
        power = running.action.transition if running else self._power.state(guest.container)
        report = self._fabric.vm(guest.name)
        return instance_view_document(report, power, running is not None, _now())

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


def create_app(fabric: FabricReader, power: PowerBackend, token: str) -> ArmTwin:
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
    return _json(status, {"error": {"code": code, "message": message}})
