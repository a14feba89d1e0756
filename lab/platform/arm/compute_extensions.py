"""Microsoft.Compute's VM extensions and Run Command, as the twin serves them.

ARM models a VM's extensions as child resources that exist once CRP has put them in the
VM's goal state, before (and apart from) what the agent reports; their status is what
the agent last reported. So a list or get here reads both from the fabric: the goal
state's handlers (any not being uninstalled) and the agent's reports (a handler the
agent reports without a goal-state entry is shown too: it is on the VM).

Routes (under ``/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute/
virtualMachines/<vm>``)::

    GET    extensions            {"value": [extension]}
    GET    extensions/<name>     extension ($expand=instanceView)
    PUT    extensions/<name>     201 (new) / 200 + Azure-AsyncOperation: the handler is
                                 enabled in the goal state with the settings, and the
                                 operation ends with the agent's report
                                 (:mod:`~lab.platform.arm.compute_extension_work`)
    DELETE extensions/<name>     202 + operation; 204 if absent
    POST   runCommand            202 + operation; the RunCommandResult at its Location
                                 (:mod:`~lab.platform.arm.compute_run_command`)

An extension PUT or a Run Command needs a VM that runs (409 ``OperationNotAllowed``
otherwise, with Azure's wording) and a handler the platform publishes (404
``ArtifactNotFound`` / ``ArtifactVersionNotFound``); a second Run Command while one runs
gets Azure's 409 ``Conflict``. The resource name a PUT chooses is remembered for the
VM's handler (by default an extension is named after its type, as Azure Backup and the
portal name them).

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from werkzeug.wrappers import Response

from lab.platform.arm.compute_documents import EXTENSION_TYPE, VM_TYPE, extension_document
from lab.platform.arm.compute_extension_work import ExtensionEnablement
from lab.platform.arm.compute_run_command import (
    HANDLER,
    IN_PROGRESS_MESSAGE,
    NOT_RUNNING_MESSAGE,
    REQUESTED_VERSION,
    RunCommand,
    RunCommandInput,
    run_command_result,
)
from lab.platform.arm.conventions import (
    ArmError,
    JsonObject,
    ResourceType,
    guest,
    json_body,
    json_response,
    not_found,
    resource_group,
    wants_instance_view,
)
from lab.platform.arm.extensions import (
    EXTENSION_OPERATION_TIMEOUT,
    ExtensionDeletion,
    arm_name,
    reported_extensions,
)
from lab.platform.arm.fabric import ExtensionReport, FabricClient, GoalStateHandler
from lab.platform.arm.lro import accepted, operation_url
from lab.platform.arm.operations import (
    Action,
    ExtensionDelete,
    Operation,
    OperationStore,
    run_in_background,
)
from lab.platform.arm.provider import Call, Route
from lab.platform.roster import GuestEntry, Roster

NOT_RUNNING_STATES = ("stopped", "deallocated")
EXTENSIONS_NOT_RUNNING_MESSAGE = "Cannot modify extensions in the VM when the VM is not running."


@dataclass(frozen=True)
class ExtensionWrite:
    """Creating or updating one VM extension: its ARM name and the handler."""

    name: str
    handler: str
    creating: bool
    value: ClassVar[str] = "createOrUpdate"


@dataclass(frozen=True)
class VmExtension:
    """One extension as ARM shows it: its name, the agent's report, the goal state's."""

    name: str
    handler: str
    report: ExtensionReport
    goal: GoalStateHandler | None


class ExtensionNames:
    """The resource name each VM's handler was given by a PUT (default: its type)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[tuple[str, str], str] = {}

    def remember(self, vm: str, handler: str, name: str) -> None:
        with self._lock:
            self._names[(vm.lower(), handler.lower())] = name

    def name(self, vm: str, handler: str) -> str:
        with self._lock:
            return self._names.get((vm.lower(), handler.lower()), arm_name(handler))


Begin = Callable[[GuestEntry, Action], Operation]


class ComputeExtensions:
    """VM extensions (list, get, create or update, delete) and Run Command."""

    def __init__(
        self,
        fabric: FabricClient,
        operations: OperationStore,
        *,
        begin: Begin,
        retry_after: str,
        extension_timeout: Callable[[], float] = EXTENSION_OPERATION_TIMEOUT.lab_seconds,
        agent_wait: Callable[[], float] | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self._fabric = fabric
        self.operations = operations
        self._begin = begin
        self._retry_after = retry_after
        self._timeout = extension_timeout
        self.agent_wait = agent_wait  # None: Azure's, on the lab's clock
        self._poll = poll_seconds
        self.names = ExtensionNames()

    def routes(self, vms: str, vm_type: ResourceType, ext_type: ResourceType) -> Sequence[Route]:
        return (
            Route(f"{vms}/<vm>/extensions", ("GET",), self._list, ext_type),
            Route(f"{vms}/<vm>/extensions/<ext>", ("GET",), self._get, ext_type),
            Route(f"{vms}/<vm>/extensions/<ext>", ("PUT",), self._put, ext_type),
            Route(f"{vms}/<vm>/extensions/<ext>", ("DELETE",), self._delete, ext_type),
            Route(f"{vms}/<vm>/runCommand", ("POST",), self._run_command, vm_type),
        )

    # -- reading

    def extensions(self, vm: GuestEntry) -> list[VmExtension]:
        """The VM's extensions: the goal state's (not being uninstalled) and the agent's."""
        reports = {e.name.lower(): e for e in reported_extensions(self._fabric.vm(vm.name))}
        goal = {
            h.name.lower(): h
            for h in self._fabric.goal_state_handlers(vm.name)
            if h.state != "uninstall"
        }
        found = []
        for key in dict.fromkeys([*goal, *reports]):
            handler = goal.get(key)
            report = reports.get(key) or ExtensionReport(
                name=handler.name if handler else key,
                version=handler.version if handler else None,
            )
            name = self.names.name(vm.name, report.name)
            found.append(VmExtension(name, report.name, report, handler))
        return found

    def find(self, vm: GuestEntry, name: str) -> VmExtension | None:
        wanted = name.lower()
        return next((e for e in self.extensions(vm) if e.name.lower() == wanted), None)

    def _list(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = guest(roster, call.args["vm"], VM_TYPE)
        expand = wants_instance_view(call.request)
        value = [self.document(roster, vm, e, expand) for e in self.extensions(vm)]
        return json_response(200, {"value": value})

    def _get(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = guest(roster, call.args["vm"], VM_TYPE)
        ext = self.find(vm, call.args["ext"])
        if ext is None:
            raise not_found(roster, EXTENSION_TYPE, f"{vm.name}/{call.args['ext']}")
        return json_response(200, self.document(roster, vm, ext, wants_instance_view(call.request)))

    def document(
        self,
        roster: Roster,
        vm: GuestEntry,
        ext: VmExtension,
        expand: bool,
        settings: Mapping[str, object] | None = None,
    ) -> JsonObject:
        if settings is None and ext.goal is not None:
            settings = ext.goal.public_settings
        return extension_document(
            roster,
            vm.name,
            ext.report,
            expand=expand,
            name=ext.name,
            provisioning_state=self._state_in_operation(vm, ext.handler),
            settings=settings,
        )

    def _state_in_operation(self, vm: GuestEntry, handler: str) -> str | None:
        running = self.operations.running(vm.name)
        action = running.action if running is not None else None
        if isinstance(action, ExtensionDelete) and action.handler.lower() == handler.lower():
            return "Deleting"
        if isinstance(action, ExtensionWrite) and action.handler.lower() == handler.lower():
            return "Creating" if action.creating else "Updating"
        return None

    # -- writing

    def _put(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = guest(roster, call.args["vm"], VM_TYPE)
        name = call.args["ext"]
        properties = json_body(call.request).get("properties")
        if not isinstance(properties, dict):
            raise ArmError(
                400, "InvalidParameter", "Required parameter 'properties' is missing (null)."
            )
        publisher, kind = _required(properties, "publisher"), _required(properties, "type")
        handler = f"{publisher}.{kind}"
        requested = str(properties.get("typeHandlerVersion") or "")
        version = self._version(
            roster, handler, requested, bool(properties.get("autoUpgradeMinorVersion"))
        )
        self._require_running(vm, EXTENSIONS_NOT_RUNNING_MESSAGE)
        public = _settings(properties, "settings")
        protected = _settings(properties, "protectedSettings")
        existing = self.find(vm, name)
        op = self._begin(vm, ExtensionWrite(name=name, handler=handler, creating=existing is None))
        self.names.remember(vm.name, handler, name)
        work = self._enablement(vm, name, handler, version, public, protected or None)
        run_in_background(self.operations, op, lambda: _discard(work()))
        ext = self.find(vm, name) or VmExtension(
            name, handler, ExtensionReport(handler, version), None
        )
        body = self.document(roster, vm, ext, expand=False, settings=public)
        response = json_response(200 if existing else 201, body)
        response.headers["Azure-AsyncOperation"] = operation_url(call.request, roster, op)
        response.headers["Retry-After"] = self._retry_after
        return response

    def _delete(self, call: Call) -> Response:
        """ARM's DELETE: 202 + operation while the agent uninstalls; 204 when there is
        nothing to delete (ARM deletes are idempotent)."""
        roster = resource_group(call.roster, call.args)
        vm = guest(roster, call.args["vm"], VM_TYPE)
        ext = self.find(vm, call.args["ext"])
        if ext is None:
            return Response(status=204)
        op = self._begin(vm, ExtensionDelete(name=ext.name, handler=ext.handler))
        work = ExtensionDeletion(
            fabric=self._fabric,
            vm=vm.name,
            name=ext.name,
            handler=ext.handler,
            timeout_seconds=self._timeout(),
            poll_seconds=self._poll,
        )
        run_in_background(self.operations, op, work)
        return accepted(call.request, roster, op, self._retry_after)

    def _run_command(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = guest(roster, call.args["vm"], VM_TYPE)
        command = RunCommandInput.from_body(json_body(call.request))
        protected = command.protected_settings()
        self._require_running(vm, NOT_RUNNING_MESSAGE)
        version = self._version(roster, HANDLER, REQUESTED_VERSION, True)
        running = self.operations.running(vm.name)
        if running is not None and isinstance(running.action, RunCommand):
            raise ArmError(409, "Conflict", IN_PROGRESS_MESSAGE)
        op = self._begin(vm, RunCommand(command.command_id))
        name = self.names.name(vm.name, HANDLER)
        work = self._enablement(vm, name, HANDLER, version, {}, protected)
        run_in_background(self.operations, op, lambda: run_command_result(work()))
        return accepted(call.request, roster, op, self._retry_after)

    # -- helpers

    def _enablement(
        self,
        vm: GuestEntry,
        name: str,
        handler: str,
        version: str,
        public: Mapping[str, object],
        protected: Mapping[str, object] | None,
    ) -> ExtensionEnablement:
        work = ExtensionEnablement(
            fabric=self._fabric,
            vm=vm.name,
            name=name,
            handler=handler,
            version=version,
            public=public,
            protected=protected,
            timeout_seconds=self._timeout,
            poll_seconds=self._poll,
        )
        if self.agent_wait is not None:
            work.agent_wait_seconds = self.agent_wait
        return work

    def _require_running(self, vm: GuestEntry, message: str) -> None:
        report = self._fabric.vm(vm.name)
        if report is not None and report.power_state in NOT_RUNNING_STATES:
            raise ArmError(409, "OperationNotAllowed", message)

    def _version(self, roster: Roster, handler: str, requested: str, auto_upgrade: bool) -> str:
        """CRP's choice among the versions the platform publishes: the newest one with
        the requested major.minor (any minor of that major when minor versions
        auto-upgrade; exactly the version when all four parts are given)."""
        publisher, kind = handler.rsplit(".", 1)
        listed = self._fabric.handler_versions(handler)
        if not listed:
            raise ArmError(
                404,
                "ArtifactNotFound",
                f"The VM extension with publisher '{publisher}' and type '{kind}' could not "
                f"be found in location '{roster.location}'.",
            )
        chosen = choose_version(listed, requested, auto_upgrade)
        if chosen is None:
            raise ArmError(
                404,
                "ArtifactVersionNotFound",
                f"No version found in the artifact repository that satisfies the requested "
                f"version '{requested}' for VM extension with publisher '{publisher}' and "
                f"type '{kind}'.",
            )
        return chosen


def choose_version(listed: Sequence[str], requested: str, auto_upgrade: bool) -> str | None:
    """The newest listed version that satisfies ``requested`` (``1.0``, ``1``, ``1.0.5``)."""
    wanted = [p for p in requested.split(".") if p] if requested else []
    if len(wanted) >= 2 and auto_upgrade and len(wanted) < 3:
        wanted = wanted[:1]  # minor versions upgrade: any 1.x
    matching = [v for v in listed if v.split(".")[: len(wanted)] == wanted]
    return max(matching, key=_version_key) if matching else None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in version.split("."))


def _required(properties: Mapping[str, object], key: str) -> str:
    value = properties.get(key)
    if not isinstance(value, str) or not value:
        raise ArmError(400, "InvalidParameter", f"Required parameter '{key}' is missing (null).")
    return value


def _settings(properties: Mapping[str, object], key: str) -> dict[str, object]:
    value = properties.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ArmError(
            400, "InvalidParameter", f"The value of parameter '{key}' must be a JSON object."
        )
    return value


def _discard(_: object) -> None:
    """An extension PUT's operation carries no result (the resource is read after it)."""
    return None
