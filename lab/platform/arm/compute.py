"""Microsoft.Compute as the twin serves it: virtual machines, their power, their extensions.

Checks and runbooks diagnose a lab VM with the Azure SDK calls they would make against
real Azure (VM get, instance view, power off / start / restart, list / get / delete its
extensions). What the answers report is observed, never configured: the guest agent's
status, OS and extension statuses come from the fabric's control API (what the real
agent last reported to our WireServer), and so does the power state, the fabric's one
record of it (:mod:`lab.platform.power_states`): a power operation stops or starts the
guest's container, then records the outcome there, and the host's watcher beside the
twin (:mod:`lab.platform.host_power`) reports a guest OS that halted, so, as on Azure, a
VM shut down from inside shows ``PowerState/stopped``. Power work and the watcher share
one lock per VM.

Routes (under ``/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Compute``)::

    GET    virtualMachines                          list VMs
    GET    virtualMachines/<vm>                     VM ($expand=instanceView)
    GET    virtualMachines/<vm>/instanceView        instance view
    POST   virtualMachines/<vm>/<powerOff|deallocate|start|restart>   202 + operation
    ...    virtualMachines/<vm>/extensions[/<name>], virtualMachines/<vm>/runCommand
                                                    (:mod:`~lab.platform.arm.compute_extensions`)
    GET    /subscriptions/<sub>/providers/Microsoft.Compute/virtualMachines   list_all
    GET    /subscriptions/<sub>/providers/Microsoft.Compute/locations/<loc>/operations/<id>

A VM's document says what is true of the guest (size, image, disk, NIC:
:mod:`~lab.platform.arm.compute_profiles`). Power off leaves the VM ``stopped``,
deallocate ``deallocated``; a restart needs a running VM (409 ``OperationNotAllowed``
otherwise, as in Azure).

Runs inside the twin's container on Debian's Python: stdlib, Werkzeug and ``docker``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from werkzeug.wrappers import Response

from lab.platform.arm.compute_documents import VM_TYPE, instance_view_document, vm_document
from lab.platform.arm.compute_extensions import NOT_RUNNING_STATES, ComputeExtensions
from lab.platform.arm.compute_run_command import NOT_RUNNING_MESSAGE
from lab.platform.arm.conventions import (
    ArmError,
    JsonObject,
    ResourceType,
    api_versions,
    guest,
    json_response,
    resource_group,
    subscription,
    wants_instance_view,
)
from lab.platform.arm.extensions import EXTENSION_OPERATION_TIMEOUT
from lab.platform.arm.fabric import FabricClient, FabricError
from lab.platform.arm.lro import accepted, operation_response
from lab.platform.arm.operations import (
    Action,
    Operation,
    OperationConflict,
    OperationError,
    OperationStore,
    run_in_background,
)
from lab.platform.arm.power import PowerAction, PowerBackend, platform_power_state
from lab.platform.arm.provider import Call, Route
from lab.platform.host_power import VmLocks
from lab.platform.roster import GuestEntry, Roster

NAMESPACE = "Microsoft.Compute"

# Azure's published api-versions of virtualMachines (and their extensions), up to the one
# the pinned azure-mgmt-compute sends (2026-04-01).
_VM_API_VERSIONS = api_versions(
    "2015-06-15",
    "2016-03-30",
    "2016-04-30-preview",
    "2017-03-30",
    "2017-12-01",
    "2018-04-01",
    "2018-06-01",
    "2018-10-01",
    "2019-03-01",
    "2019-07-01",
    "2019-12-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-04-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-04-01",
    "2025-11-01",
    "2026-04-01",
)
VIRTUAL_MACHINES = ResourceType(NAMESPACE, "virtualMachines", _VM_API_VERSIONS)
EXTENSIONS = ResourceType(NAMESPACE, "virtualMachines/extensions", _VM_API_VERSIONS)
OPERATIONS = ResourceType(NAMESPACE, "locations/operations", _VM_API_VERSIONS)

_RG = f"/subscriptions/<sub>/resourceGroups/<rg>/providers/{NAMESPACE}"
_VMS = f"{_RG}/virtualMachines"
_POWER_ACTIONS = ", ".join(a.value for a in PowerAction)


class ComputeProvider:
    """Virtual machines: documents, instance views, power, extensions and Run Command."""

    def __init__(
        self,
        fabric: FabricClient,
        power: PowerBackend,
        operations: OperationStore,
        power_locks: VmLocks,
        *,
        retry_after: str,
        extension_timeout: Callable[[], float] = EXTENSION_OPERATION_TIMEOUT.lab_seconds,
        extension_poll_seconds: float = 1.0,
    ) -> None:
        self._fabric = fabric
        self._power = power
        self.operations = operations
        self.power_locks = power_locks
        self._retry_after = retry_after
        self.extensions = ComputeExtensions(
            fabric,
            operations,
            begin=self._begin,
            retry_after=retry_after,
            extension_timeout=extension_timeout,
            poll_seconds=extension_poll_seconds,
        )

    def routes(self) -> Sequence[Route]:
        vm = VIRTUAL_MACHINES
        return (
            Route(_VMS, ("GET",), self._list, vm),
            Route(
                f"/subscriptions/<sub>/providers/{NAMESPACE}/virtualMachines",
                ("GET",),
                self._list_all,
                vm,
            ),
            Route(f"{_VMS}/<vm>", ("GET",), self._get, vm),
            Route(f"{_VMS}/<vm>/instanceView", ("GET",), self._instance_view, vm),
            Route(f"{_VMS}/<vm>/<any({_POWER_ACTIONS}):act>", ("POST",), self._power_action, vm),
            *self.extensions.routes(_VMS, VIRTUAL_MACHINES, EXTENSIONS),
            Route(
                f"/subscriptions/<sub>/providers/{NAMESPACE}/locations/<loc>/operations/<op_id>",
                ("GET",),
                self._operation,
                OPERATIONS,
            ),
        )

    # -- virtual machines

    def _list(self, call: Call) -> Response:
        return self._vm_list(resource_group(call.roster, call.args), call)

    def _list_all(self, call: Call) -> Response:
        """Every VM of the subscription: the lab's one resource group holds them all."""
        return self._vm_list(subscription(call.roster, call.args["sub"]), call)

    def _vm_list(self, roster: Roster, call: Call) -> Response:
        status_only = call.request.args.get("statusOnly", "").lower() == "true"
        expand = status_only or wants_instance_view(call.request)
        value = [self._vm_document(roster, g, expand) for g in roster.guests]
        return json_response(200, {"value": value})

    def _get(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = guest(roster, call.args["vm"], VM_TYPE)
        return json_response(200, self._vm_document(roster, vm, wants_instance_view(call.request)))

    def _instance_view(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        return json_response(
            200, self._instance_view_document(guest(roster, call.args["vm"], VM_TYPE))
        )

    def _power_action(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = guest(roster, call.args["vm"], VM_TYPE)
        action = PowerAction(call.args["act"])
        if action is PowerAction.RESTART:
            report = self._fabric.vm(vm.name)
            if report is not None and report.power_state in NOT_RUNNING_STATES:
                raise ArmError(409, "OperationNotAllowed", NOT_RUNNING_MESSAGE)
        op = self._begin(vm, action)
        run_in_background(self.operations, op, partial(self._power_work, vm, action))
        return accepted(call.request, roster, op, self._retry_after)

    def _power_work(self, vm: GuestEntry, action: PowerAction) -> None:
        """Stop, start or restart the guest, then record the platform's new power state."""
        with self.power_locks.held(vm.name):
            self._power.act(vm.container, action)
            try:
                self._fabric.set_power_state(vm.name, action.outcome.value)
            except FabricError as exc:
                raise OperationError(
                    f"The VM was {action.outcome.value} but the lab fabric did not record "
                    f"it: {exc}",
                    "BadGateway",
                ) from exc

    def _operation(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        return operation_response(
            call.request, self.operations, roster, NAMESPACE, call.args, self._retry_after
        )

    # -- helpers

    def _begin(self, vm: GuestEntry, action: Action) -> Operation:
        """Record a new operation on ``vm``; 409 while another one runs, as in Azure."""
        try:
            return self.operations.begin(vm.name, action, NAMESPACE)
        except OperationConflict as exc:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation '{action.value}' is not allowed on VM '{vm.name}' "
                f"while operation '{exc.running.action.value}' is in progress.",
            ) from exc

    def _vm_document(self, roster: Roster, vm: GuestEntry, expand: bool) -> JsonObject:
        busy = self.operations.running(vm.name) is not None
        view = self._instance_view_document(vm) if expand else None
        return vm_document(roster, vm, busy, view)

    def _instance_view_document(self, vm: GuestEntry) -> JsonObject:
        running = self.operations.running(vm.name)
        report = self._fabric.vm(vm.name)
        if running is not None and isinstance(running.action, PowerAction):
            power = running.action.transition
        else:
            power = platform_power_state(report.power_state if report else None)
        return instance_view_document(report, power, running is not None, datetime.now(UTC))
