"""Microsoft.RecoveryServices as the twin serves it: the lab's vault and Azure Backup's
view of its VMs (protected items, "Backup now", jobs, policies, recovery points).

The fabric's backup service (:mod:`lab.platform.backup`) does the work: it runs the jobs,
keeps the restore points and policies and starts the scheduled runs. This provider shows
them as Azure Backup does, for the unmodified ``azure-mgmt-recoveryservices`` (vaults)
and ``azure-mgmt-recoveryservicesbackup``, and passes on what a client asks for
(:mod:`~lab.platform.arm.recovery_services_fabric`). The documents are in
:mod:`~lab.platform.arm.recovery_services_documents`, times on the lab's Azure clock;
what clients send (policy bodies, ``$filter``) is read in
:mod:`~lab.platform.arm.recovery_services_requests`.

One vault per lab (:func:`lab.platform.arm.naming.vault_name`) protects every VM of the
lab: container ``IaasVMContainer;iaasvmcontainerv2;<rg>;<vm>``, item
``VM;iaasvmcontainerv2;<rg>;<vm>`` in fabric ``Azure``. Every answer carries ARM's
``Date`` header on the lab's Azure clock, so a script can read the platform's time as
it would read Azure's.

Routes (``V`` = ``/subscriptions/<sub>/resourceGroups/<rg>/providers/
Microsoft.RecoveryServices/vaults``, ``I`` = ``V/<vault>/backupFabrics/Azure/
protectionContainers/<container>/protectedItems/<item>``)::

    GET  /subscriptions/<sub>/providers/Microsoft.RecoveryServices/vaults    list
    GET  V, V/<vault>                                       vaults
    GET  V/<vault>/backupProtectionContainers, .../protectionContainers/<c>
    GET  V/<vault>/backupProtectedItems                     every VM's protected item
    GET  I                                                  protected item
    PUT  I  {"properties": {"policyId": ...}}               (re)assign a policy: 202
    POST I/backup                                           "Backup now": 202
    GET  I/operationsStatus/<op>, I/operationResults/<op>   its operation
    GET  V/<vault>/backupOperations/<op>, backupOperationResults/<op>
    GET  I/recoveryPoints, I/recoveryPoints/<id>            IaasVMRecoveryPoint
    GET  V/<vault>/backupJobs[?$filter=...], backupJobs/<job>          AzureIaaSVMJob
    GET  V/<vault>/backupPolicies, GET|PUT backupPolicies/<policy>     AzureIaasVM
    POST /subscriptions/<sub>/providers/Microsoft.RecoveryServices/locations/<loc>/backupStatus

``backupJobs``' ``$filter`` takes ``status``, ``operation``, ``backupManagementType``
(``eq``, joined by ``and``) and the ``startTime``/``endTime`` window of the jobs' start
(``'2026-12-07 08:00:00 AM'`` as ``az`` writes it, or ISO 8601, on the Azure clock);
Azure's other filter fields are refused with 400. Policies are daily
(``SimpleSchedulePolicy``, one run time, UTC); their retention count is kept by the twin
and shown, not enforced: the lab keeps every restore point up to the collection limit.

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import quote, urlencode
from wsgiref.handlers import format_date_time

from werkzeug.wrappers import Response

from lab.platform.arm import naming
from lab.platform.arm.conventions import (
    ArmError,
    JsonObject,
    ResourceType,
    api_versions,
    json_body,
    json_response,
    resource_group,
    subscription,
)
from lab.platform.arm.operations import Operation, OperationConflict, OperationStore
from lab.platform.arm.provider import Call, Route
from lab.platform.arm.recovery_services_documents import (
    DEFAULT_RETENTION_DAYS,
    VM_ITEM_TYPE,
    AzureTime,
    backup_status_document,
    container_document,
    job_document,
    operation_status_document,
    policy_document,
    protected_item_document,
    recovery_point_document,
    vault_document,
)
from lab.platform.arm.recovery_services_fabric import BackupFabric, FabricJob, FabricPolicies
from lab.platform.arm.recovery_services_requests import (
    item_filter,
    job_filter,
    policy_filter,
    read_policy,
)
from lab.platform.backup.policy import PolicyError, check_policy_name
from lab.platform.roster import GuestEntry, Roster

NAMESPACE = naming.RECOVERY_SERVICES

# Azure's published api-versions of Microsoft.RecoveryServices (vaults and Azure
# Backup's types share the list here), up to those the pinned SDKs send:
# azure-mgmt-recoveryservicesbackup 2026-10-01, azure-mgmt-recoveryservices 2026-11-01;
# az 2.91's pinned SDKs send 2026-08-01 (backup) and 2026-07-01 (vaults).
_API_VERSIONS = api_versions(
    "2016-06-01",
    "2016-12-01",
    "2017-07-01",
    "2019-05-13",
    "2019-06-15",
    "2020-02-02",
    "2020-10-01",
    "2021-01-01",
    "2021-02-01",
    "2021-02-10",
    "2021-03-01",
    "2021-04-01",
    "2021-06-01",
    "2021-07-01",
    "2021-08-01",
    "2021-10-01",
    "2021-12-01",
    "2022-01-01",
    "2022-02-01",
    "2022-03-01",
    "2022-04-01",
    "2022-06-01-preview",
    "2022-09-01-preview",
    "2022-09-10",
    "2022-09-30-preview",
    "2022-10-01",
    "2023-01-01",
    "2023-02-01",
    "2023-04-01",
    "2023-06-01",
    "2023-08-01",
    "2024-01-01",
    "2024-02-01",
    "2024-04-01",
    "2024-07-30-preview",
    "2024-10-01",
    "2024-11-01-preview",
    "2025-01-01",
    "2025-02-01",
    "2025-08-01",
    "2026-07-01",
    "2026-08-01",
    "2026-10-01",
    "2026-11-01",
)
VAULTS = ResourceType(NAMESPACE, "vaults", _API_VERSIONS)
CONTAINERS = ResourceType(NAMESPACE, "vaults/backupFabrics/protectionContainers", _API_VERSIONS)
PROTECTED_ITEMS = ResourceType(
    NAMESPACE, "vaults/backupFabrics/protectionContainers/protectedItems", _API_VERSIONS
)
RECOVERY_POINTS = ResourceType(
    NAMESPACE,
    "vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints",
    _API_VERSIONS,
)
JOBS = ResourceType(NAMESPACE, "vaults/backupJobs", _API_VERSIONS)
POLICIES = ResourceType(NAMESPACE, "vaults/backupPolicies", _API_VERSIONS)
OPERATIONS = ResourceType(NAMESPACE, "vaults/backupOperations", _API_VERSIONS)
BACKUP_STATUS = ResourceType(NAMESPACE, "locations/backupStatus", _API_VERSIONS)

_V = f"/subscriptions/<sub>/resourceGroups/<rg>/providers/{NAMESPACE}/vaults"
_C = f"{_V}/<vault>/backupFabrics/<fabric>/protectionContainers/<container>"
_I = f"{_C}/protectedItems/<item>"


@dataclass(frozen=True)
class BackupNow:
    """A "Backup now" of one VM: its operation names the job it started."""

    vm: str
    value: ClassVar[str] = "backup"


@dataclass(frozen=True)
class ConfigureProtection:
    """A VM put on a policy (``PUT`` of its protected item)."""

    vm: str
    policy: str
    value: ClassVar[str] = "configureProtection"


class RecoveryServicesProvider:
    """The lab's vault: protected items, backups, jobs, policies, recovery points."""

    def __init__(
        self,
        backup: BackupFabric,
        operations: OperationStore,
        *,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._backup = backup
        self.operations = operations
        self._wall_clock = wall_clock or wall_now
        self._retention: dict[str, int] = {}  # policy name (lower case) -> days
        self._lock = threading.Lock()

    def routes(self) -> Sequence[Route]:
        served = self._served
        items, points = PROTECTED_ITEMS, RECOVERY_POINTS
        return (
            Route(
                f"/subscriptions/<sub>/providers/{NAMESPACE}/vaults",
                ("GET",),
                served(self._vaults_in_subscription),
                VAULTS,
            ),
            Route(_V, ("GET",), served(self._vaults_in_group), VAULTS),
            Route(f"{_V}/<vault>", ("GET",), served(self._vault), VAULTS),
            Route(
                f"{_V}/<vault>/backupProtectionContainers",
                ("GET",),
                served(self._containers),
                CONTAINERS,
            ),
            Route(_C, ("GET",), served(self._container), CONTAINERS),
            Route(f"{_V}/<vault>/backupProtectedItems", ("GET",), served(self._items), items),
            Route(_I, ("GET",), served(self._item), items),
            Route(_I, ("PUT",), served(self._protect), items),
            Route(f"{_I}/backup", ("POST",), served(self._backup_now), items),
            Route(
                f"{_I}/<any(operationsStatus, operationResults):kind>/<op_id>",
                ("GET",),
                served(self._item_operation),
                items,
            ),
            Route(f"{_I}/recoveryPoints", ("GET",), served(self._recovery_points), points),
            Route(f"{_I}/recoveryPoints/<point>", ("GET",), served(self._recovery_point), points),
            Route(f"{_V}/<vault>/backupJobs", ("GET",), served(self._jobs), JOBS),
            Route(f"{_V}/<vault>/backupJobs/<job>", ("GET",), served(self._job), JOBS),
            Route(
                f"{_V}/<vault>/<any(backupOperations, backupOperationResults):kind>/<op_id>",
                ("GET",),
                served(self._vault_operation),
                OPERATIONS,
            ),
            Route(f"{_V}/<vault>/backupPolicies", ("GET",), served(self._policies), POLICIES),
            Route(
                f"{_V}/<vault>/backupPolicies/<policy>",
                ("GET",),
                served(self._policy),
                POLICIES,
            ),
            Route(
                f"{_V}/<vault>/backupPolicies/<policy>",
                ("PUT",),
                served(self._set_policy),
                POLICIES,
            ),
            Route(
                f"/subscriptions/<sub>/providers/{NAMESPACE}/locations/<loc>/backupStatus",
                ("POST",),
                served(self._backup_status),
                BACKUP_STATUS,
            ),
        )

    # -- the Azure clock on every answer

    def _served(self, handler: Callable[[Call, AzureTime], Response]) -> Callable[[Call], Response]:
        """Run ``handler`` with the lab's Azure clock, read once, and stamp ARM's
        ``Date`` header with it."""

        def serve(call: Call) -> Response:
            clock = AzureTime.of(self._backup.backup_policies(), self._wall_clock())
            response = handler(call, clock)
            response.headers["Date"] = format_date_time(clock.azure_now.timestamp())
            return response

        return serve

    # -- vaults

    def _vaults_in_subscription(self, call: Call, clock: AzureTime) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        return json_response(200, {"value": [vault_document(roster)]})

    def _vaults_in_group(self, call: Call, clock: AzureTime) -> Response:
        roster = resource_group(call.roster, call.args)
        return json_response(200, {"value": [vault_document(roster)]})

    def _vault(self, call: Call, clock: AzureTime) -> Response:
        return json_response(200, vault_document(_vault(call)))

    # -- containers and protected items

    def _containers(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        return json_response(
            200, {"value": [container_document(roster, g.name) for g in roster.guests]}
        )

    def _container(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        return json_response(200, container_document(roster, _container_vm(call, roster).name))

    def _items(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        wanted = item_filter(call.request.args.get("$filter", ""))
        if not wanted:
            return json_response(200, {"value": []})
        policies = self._backup.backup_policies()
        jobs = self._backup.backup_jobs()
        value = [self._item_document(roster, g.name, policies, jobs, clock) for g in roster.guests]
        return json_response(200, {"value": value})

    def _item(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        vm = _item_vm(call, roster)
        policies = self._backup.backup_policies()
        jobs = self._backup.backup_jobs(vm.name)
        return json_response(200, self._item_document(roster, vm.name, policies, jobs, clock))

    def _item_document(
        self,
        roster: Roster,
        vm: str,
        policies: FabricPolicies,
        jobs: Sequence[FabricJob],
        clock: AzureTime,
    ) -> JsonObject:
        return protected_item_document(
            roster,
            vm,
            policies.of_vm(vm),
            [j for j in jobs if j.vm == vm],
            self._backup.restore_points(vm),
            clock,
        )

    def _protect(self, call: Call, clock: AzureTime) -> Response:
        """Put the VM on the policy the body's ``policyId`` names (Azure's "configure
        backup" or "change policy"): done at once; 202 with the operation, as Azure."""
        roster = _vault(call)
        vm = _item_vm(call, roster)
        properties = _properties(json_body(call.request))
        item_type = properties.get("protectedItemType", VM_ITEM_TYPE)
        if str(item_type).lower() != VM_ITEM_TYPE.lower():
            raise ArmError(
                400, "BadRequest", f"protectedItemType must be '{VM_ITEM_TYPE}', not {item_type!r}."
            )
        source = properties.get("sourceResourceId")
        if (
            source is not None
            and str(source).lower() != naming.vm_resource_id(roster, vm.name).lower()
        ):
            raise ArmError(
                400,
                "BadRequest",
                f"sourceResourceId {source!r} is not the VM of item {call.args['item']!r}.",
            )
        policy_id = properties.get("policyId")
        if not isinstance(policy_id, str) or not policy_id.strip("/"):
            raise ArmError(400, "BadRequest", "properties.policyId must name a backup policy.")
        policy_name = policy_id.rstrip("/").rsplit("/", 1)[-1]
        policy = self._backup.backup_policies().named(policy_name)
        if (
            policy is None
            or policy_id.lower() != naming.backup_policy_id(roster, policy.name).lower()
        ):
            raise ArmError(
                400,
                "BadRequest",
                f"Backup policy {policy_id!r} was not found in vault "
                f"'{naming.vault_name(roster)}'.",
            )
        op = self._begin(roster, vm.name, ConfigureProtection(vm.name, policy.name))
        try:
            self._backup.protect(vm.name, policy.name)
        except Exception:
            self.operations.finish(op.id, "The policy could not be assigned.", "BadGateway")
            raise
        policies = self._backup.backup_policies()
        document = self._item_document(
            roster, vm.name, policies, self._backup.backup_jobs(vm.name), clock
        )
        self.operations.finish(op.id, result=document)
        return _accepted(call, roster, vm.name, op)

    def _backup_now(self, call: Call, clock: AzureTime) -> Response:
        """``backups.trigger``: the fabric starts an on-demand job (a refused one is a
        Failed job in the list, as in the portal); the operation names it."""
        roster = _vault(call)
        vm = _item_vm(call, roster)
        body = json_body(call.request) if call.request.get_data() else {}
        object_type = _properties(body).get("objectType", "IaasVMBackupRequest")
        if object_type != "IaasVMBackupRequest":
            raise ArmError(
                400, "BadRequest", f"objectType must be 'IaasVMBackupRequest', not {object_type!r}."
            )
        op = self._begin(roster, vm.name, BackupNow(vm.name))
        try:
            job = self._backup.start_backup(vm.name)
        except Exception:
            self.operations.finish(op.id, "The backup could not be started.", "BadGateway")
            raise
        self.operations.finish(op.id, result={"jobId": job.job_id})
        return _accepted(call, roster, vm.name, op)

    def _item_operation(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        vm = _item_vm(call, roster)
        op = self._operation(roster, call.args["op_id"], vm.name)
        return self._operation_answer(op, call.args["kind"] == "operationsStatus", clock)

    def _vault_operation(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        op = self._operation(roster, call.args["op_id"], None)
        return self._operation_answer(op, call.args["kind"] == "backupOperations", clock)

    def _operation_answer(self, op: Operation, status: bool, clock: AzureTime) -> Response:
        """The operation's status document, or its result (``operationResults``: 202
        while it runs, then the protected item of a PUT, nothing for a backup)."""
        result = op.result if isinstance(op.result, dict) else {}
        if status:
            job_id = result.get("jobId") if isinstance(op.action, BackupNow) else None
            return json_response(
                200,
                operation_status_document(
                    op.id,
                    op.status,
                    clock.at(op.started),
                    clock.at(op.ended) if op.ended else None,
                    str(job_id) if job_id else None,
                ),
            )
        if op.ended is None:
            return Response(status=202)
        if op.error is not None:
            raise ArmError(400, op.error_code, op.error)
        if isinstance(op.action, ConfigureProtection):
            return json_response(200, result)
        return Response(status=204)

    # -- recovery points

    def _recovery_points(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        vm = _item_vm(call, roster).name
        points = sorted(self._backup.restore_points(vm), key=lambda p: p.created_at, reverse=True)
        value = [recovery_point_document(roster, vm, p, clock) for p in points]
        return json_response(200, {"value": value})

    def _recovery_point(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        vm = _item_vm(call, roster).name
        point = next(
            (p for p in self._backup.restore_points(vm) if p.id == call.args["point"]), None
        )
        if point is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"Recovery point '{call.args['point']}' of item '{call.args['item']}' was not "
                "found.",
            )
        return json_response(200, recovery_point_document(roster, vm, point, clock))

    # -- jobs

    def _jobs(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        keep = job_filter(call.request.args.get("$filter", ""), clock)
        jobs = [j for j in self._backup.backup_jobs() if keep(j)]
        return json_response(200, {"value": [job_document(roster, j, clock) for j in jobs]})

    def _job(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        job = self._backup.backup_job(call.args["job"])
        if job is None or roster.guest_by_name(job.vm) is None:
            raise ArmError(
                404, "ResourceNotFound", f"Backup job '{call.args['job']}' was not found."
            )
        return json_response(200, job_document(roster, job, clock))

    # -- policies

    def _policies(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        wanted = policy_filter(call.request.args.get("$filter", ""))
        policies = self._backup.backup_policies().policies if wanted else ()
        value = [policy_document(roster, p, self._retention_of(p.name), clock) for p in policies]
        return json_response(200, {"value": value})

    def _policy(self, call: Call, clock: AzureTime) -> Response:
        roster = _vault(call)
        policy = self._backup.backup_policies().named(call.args["policy"])
        if policy is None:
            raise _policy_not_found(roster, call.args["policy"])
        return json_response(
            200, policy_document(roster, policy, self._retention_of(policy.name), clock)
        )

    def _set_policy(self, call: Call, clock: AzureTime) -> Response:
        """Create a policy or change its schedule: the fabric keeps the run time, the
        twin the retention count. 200 with the policy, as Azure answers a sync PUT."""
        roster = _vault(call)
        try:
            name = check_policy_name(call.args["policy"])
        except PolicyError as exc:
            raise ArmError(400, "BadRequest", str(exc)) from exc
        properties = _properties(json_body(call.request))
        run_time, retention = read_policy(properties)
        self._backup.set_backup_policy(name, run_time)
        with self._lock:
            self._retention[name.lower()] = retention
        policy = self._backup.backup_policies().named(name)
        if policy is None:
            raise ArmError(502, "BadGateway", f"The lab fabric did not keep policy '{name}'.")
        return json_response(200, policy_document(roster, policy, retention, clock))

    def _retention_of(self, policy: str) -> int:
        with self._lock:
            return self._retention.get(policy.lower(), DEFAULT_RETENTION_DAYS)

    # -- backup status of a VM

    def _backup_status(self, call: Call, clock: AzureTime) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        body = json_body(call.request)
        resource_id = str(body.get("resourceId", ""))
        vm = next(
            (
                g
                for g in roster.guests
                if naming.vm_resource_id(roster, g.name).lower() == resource_id.lower()
            ),
            None,
        )
        if vm is None:
            return json_response(200, {"protectionStatus": "NotProtected"})
        policy = self._backup.backup_policies().of_vm(vm.name)
        return json_response(200, backup_status_document(roster, vm.name, policy))

    # -- operations

    def _begin(self, roster: Roster, vm: str, action: BackupNow | ConfigureProtection) -> Operation:
        try:
            return self.operations.begin(_operation_key(roster, vm), action, NAMESPACE)
        except OperationConflict as exc:
            raise ArmError(
                409,
                "UserErrorBackupOperationInProgress",
                "Unable to initiate backup as another backup operation is currently in progress",
            ) from exc

    def _operation(self, roster: Roster, op_id: str, vm: str | None) -> Operation:
        op = self.operations.get(op_id)
        prefix = _operation_key(roster, vm) if vm else _operation_key(roster, "")
        if (
            op is None
            or op.namespace != NAMESPACE
            or not (op.vm == prefix if vm else op.vm.startswith(prefix))
        ):
            raise ArmError(404, "ResourceNotFound", f"Operation '{op_id}' was not found.")
        return op


# ---------------------------------------------------------------------- helpers


def _vault(call: Call) -> Roster:
    """The roster if the URL names the lab's subscription, group and vault."""
    roster = resource_group(call.roster, call.args)
    if call.args["vault"].lower() != naming.vault_name(roster).lower():
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{NAMESPACE}/vaults/{call.args['vault']}' under resource group "
            f"'{roster.resource_group}' was not found.",
        )
    if "fabric" in call.args and call.args["fabric"].lower() != naming.BACKUP_FABRIC.lower():
        raise ArmError(404, "ResourceNotFound", f"Fabric '{call.args['fabric']}' was not found.")
    return roster


def _container_vm(call: Call, roster: Roster) -> GuestEntry:
    name = call.args["container"].lower()
    found = next(
        (
            g
            for g in roster.guests
            if name
            in (
                naming.backup_container_name(roster, g.name).lower(),
                naming.backup_container_short_name(roster, g.name).lower(),
            )
        ),
        None,
    )
    if found is None:
        raise ArmError(
            404,
            "ResourceNotFound",
            f"Protection container '{call.args['container']}' was not found.",
        )
    return found


def _item_vm(call: Call, roster: Roster) -> GuestEntry:
    vm = _container_vm(call, roster)
    if call.args["item"].lower() != naming.protected_item_name(roster, vm.name).lower():
        raise ArmError(
            404, "ResourceNotFound", f"Protected item '{call.args['item']}' was not found."
        )
    return vm


def _properties(body: JsonObject) -> JsonObject:
    properties = body.get("properties", {})
    if not isinstance(properties, dict):
        raise ArmError(400, "InvalidRequestContent", "properties must be a JSON object.")
    return properties


def _accepted(call: Call, roster: Roster, vm: str, op: Operation) -> Response:
    """Azure Backup's 202: ``Azure-AsyncOperation`` at the item's ``operationsStatus``,
    ``Location`` at its ``operationResults``. The work is done by now: poll at once."""
    item = (
        f"{call.request.host_url.rstrip('/')}/subscriptions/{roster.subscription_id}"
        f"/resourceGroups/{roster.resource_group}/providers/{NAMESPACE}/vaults/"
        f"{naming.vault_name(roster)}/backupFabrics/{naming.BACKUP_FABRIC}/protectionContainers/"
        f"{quote(naming.backup_container_name(roster, vm), safe='')}/protectedItems/"
        f"{quote(naming.protected_item_name(roster, vm), safe='')}"
    )
    query = urlencode({"api-version": call.request.args["api-version"]})
    response = Response(status=202)
    response.headers["Azure-AsyncOperation"] = f"{item}/operationsStatus/{op.id}?{query}"
    response.headers["Location"] = f"{item}/operationResults/{op.id}?{query}"
    response.headers["Retry-After"] = "0"
    return response


def _operation_key(roster: Roster, vm: str) -> str:
    """Backup operations are keyed apart from Compute's (a VM's power operation and its
    backup do not exclude each other)."""
    return f"{naming.vault_id(roster).lower()}/{vm}"


def _policy_not_found(roster: Roster, name: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"Backup policy '{name}' was not found in vault '{naming.vault_name(roster)}'.",
    )


def wall_now() -> datetime:
    """The lab's wall clock (the fabric's, on the same host): what the fabric's times are
    written on."""
    return datetime.now(UTC)
