"""Microsoft.Network as the twin serves it: each VM's network interface and network
security group, and the NSG's security rules, held in the host firewall.

What an engineer does on Azure when a VM cannot reach storage, they do here with the
unmodified ``azure-mgmt-network`` (or ``az network``): find the VM's NIC, read its NSG
(custom rules and Azure's default rules), add, change or delete a security rule. A rule
PUT or DELETE is a long-running operation as on Azure: the rule shows ``Updating`` (or
``Deleting``) while the twin rewrites the VM's block of rules in the host firewall
(:mod:`lab.platform.arm.network_firewall`, which says what is enforced: outbound rules;
inbound rules are recorded and shown), then ``Succeeded``; if the host firewall refuses,
the operation fails and the NSG goes back to what it was, so what ARM shows is what the
host enforces. The rules live in :class:`~lab.platform.arm.network_store.NsgStore`.

The NICs and NSGs are the VMs' own and exist from the lab's start: one NIC and one NSG
per VM (:mod:`lab.platform.arm.naming`). A PUT of a VM's NSG replaces its rules (what
``network_security_groups.begin_create_or_update`` with a modified NSG does); creating
other NSGs is not supported in the lab (409 ``OperationNotAllowed``), and deleting a
VM's NSG is refused as Azure refuses an NSG in use (``InUseNetworkSecurityGroupCannotBeDeleted``).

Routes (under ``/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Network``,
the lists also under ``/subscriptions/<sub>/providers/Microsoft.Network``)::

    GET    networkInterfaces[/<nic>]
    GET    networkSecurityGroups[/<nsg>]
    PUT    networkSecurityGroups/<nsg>                           200 + Azure-AsyncOperation
    DELETE networkSecurityGroups/<nsg>                           400 in use; 204 if absent
    GET    networkSecurityGroups/<nsg>/securityRules[/<rule>]
    PUT    networkSecurityGroups/<nsg>/securityRules/<rule>      201/200 + Azure-AsyncOperation
    DELETE networkSecurityGroups/<nsg>/securityRules/<rule>      202 + operation; 204 if absent
    GET    networkSecurityGroups/<nsg>/defaultSecurityRules[/<rule>]
    GET    /subscriptions/<sub>/providers/Microsoft.Network/locations/<loc>/operations/<id>

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from werkzeug.wrappers import Response

from lab.platform.arm import naming
from lab.platform.arm.conventions import (
    ArmError,
    JsonObject,
    ResourceType,
    api_versions,
    find_named,
    json_body,
    json_response,
    not_found,
    resource_group,
    subscription,
)
from lab.platform.arm.lro import accepted, operation_response, operation_url
from lab.platform.arm.network_documents import (
    DEFAULT_RULE_TYPE,
    NIC_TYPE,
    NSG_TYPE,
    RULE_TYPE,
    default_rule_document,
    nic_document,
    nsg_document,
    rule_document,
    rule_id,
)
from lab.platform.arm.network_firewall import (
    DetachedFirewall,
    Firewall,
    FirewallError,
    enforce,
)
from lab.platform.arm.network_rules import (
    DEFAULT_RULES,
    SecurityRule,
    check_conflicts,
    check_rule_set,
    parse_rule,
)
from lab.platform.arm.network_store import (
    DELETING,
    SUCCEEDED,
    UPDATING,
    NsgStore,
    StoredRule,
    new_etag,
)
from lab.platform.arm.operations import Operation, OperationError, OperationStore, run_in_background
from lab.platform.arm.provider import Call, Route
from lab.platform.roster import GuestEntry, Roster

NAMESPACE = naming.NETWORK

_log = logging.getLogger("lab.platform.arm")

# Azure's published api-versions of Microsoft.Network, up to the one the pinned
# azure-mgmt-network sends (2026-03-01); az's releases send versions from this list.
_API_VERSIONS = api_versions(
    "2015-06-15",
    "2016-03-30",
    "2016-06-01",
    "2016-07-01",
    "2016-08-01",
    "2016-09-01",
    "2016-10-01",
    "2016-11-01",
    "2016-12-01",
    "2017-03-01",
    "2017-04-01",
    "2017-06-01",
    "2017-08-01",
    "2017-09-01",
    "2017-10-01",
    "2017-11-01",
    "2018-01-01",
    "2018-02-01",
    "2018-04-01",
    "2018-06-01",
    "2018-07-01",
    "2018-08-01",
    "2018-10-01",
    "2018-11-01",
    "2018-12-01",
    "2019-02-01",
    "2019-04-01",
    "2019-06-01",
    "2019-07-01",
    "2019-08-01",
    "2019-09-01",
    "2019-11-01",
    "2019-12-01",
    "2020-03-01",
    "2020-04-01",
    "2020-05-01",
    "2020-06-01",
    "2020-07-01",
    "2020-08-01",
    "2020-11-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2022-01-01",
    "2022-05-01",
    "2022-07-01",
    "2022-09-01",
    "2022-11-01",
    "2023-02-01",
    "2023-04-01",
    "2023-05-01",
    "2023-06-01",
    "2023-09-01",
    "2023-11-01",
    "2024-01-01",
    "2024-03-01",
    "2024-05-01",
    "2024-07-01",
    "2024-10-01",
    "2025-01-01",
    "2025-03-01",
    "2025-05-01",
    "2025-07-01",
    "2026-03-01",
)
NETWORK_INTERFACES = ResourceType(NAMESPACE, "networkInterfaces", _API_VERSIONS)
NETWORK_SECURITY_GROUPS = ResourceType(NAMESPACE, "networkSecurityGroups", _API_VERSIONS)
SECURITY_RULES = ResourceType(NAMESPACE, "networkSecurityGroups/securityRules", _API_VERSIONS)
DEFAULT_SECURITY_RULES = ResourceType(
    NAMESPACE, "networkSecurityGroups/defaultSecurityRules", _API_VERSIONS
)
OPERATIONS = ResourceType(NAMESPACE, "locations/operations", _API_VERSIONS)

_SUB = f"/subscriptions/<sub>/providers/{NAMESPACE}"
_RG = f"/subscriptions/<sub>/resourceGroups/<rg>/providers/{NAMESPACE}"
_NICS = f"{_RG}/networkInterfaces"
_NSGS = f"{_RG}/networkSecurityGroups"
_RULES = f"{_NSGS}/<nsg>/securityRules"
_DEFAULTS = f"{_NSGS}/<nsg>/defaultSecurityRules"

FirewallFactory = Callable[[str], Firewall]


@dataclass(frozen=True)
class NsgChange:
    """A change to an NSG's rules, as its operation names it (``createOrUpdate``,
    ``delete``)."""

    value: str


class NetworkProvider:
    """NICs, NSGs and security rules; rule changes enforced in the host firewall."""

    def __init__(
        self,
        operations: OperationStore,
        *,
        retry_after: str,
        store: NsgStore | None = None,
        firewall: FirewallFactory | None = None,
    ) -> None:
        self.operations = operations
        self.store = store or NsgStore()
        # Without a host firewall (tests), one detached chain per lab, enforced nowhere.
        self._detached: dict[str, DetachedFirewall] = {}
        self._firewall: FirewallFactory = firewall or self._detached_firewall
        self._retry_after = retry_after
        # Every read and change of the store, and every rewrite of the host firewall.
        self._lock = threading.Lock()

    def _detached_firewall(self, lab: str) -> Firewall:
        return self._detached.setdefault(lab, DetachedFirewall())

    def routes(self) -> Sequence[Route]:
        nic, nsg = NETWORK_INTERFACES, NETWORK_SECURITY_GROUPS
        rules, defaults = SECURITY_RULES, DEFAULT_SECURITY_RULES
        return (
            Route(_NICS, ("GET",), self._list_nics, nic),
            Route(f"{_SUB}/networkInterfaces", ("GET",), self._list_all_nics, nic),
            Route(f"{_NICS}/<nic>", ("GET",), self._get_nic, nic),
            Route(_NSGS, ("GET",), self._list_nsgs, nsg),
            Route(f"{_SUB}/networkSecurityGroups", ("GET",), self._list_all_nsgs, nsg),
            Route(f"{_NSGS}/<nsg>", ("GET",), self._get_nsg, nsg),
            Route(f"{_NSGS}/<nsg>", ("PUT",), self._put_nsg, nsg),
            Route(f"{_NSGS}/<nsg>", ("DELETE",), self._delete_nsg, nsg),
            Route(_RULES, ("GET",), self._list_rules, rules),
            Route(f"{_RULES}/<rule>", ("GET",), self._get_rule, rules),
            Route(f"{_RULES}/<rule>", ("PUT",), self._put_rule, rules),
            Route(f"{_RULES}/<rule>", ("DELETE",), self._delete_rule, rules),
            Route(_DEFAULTS, ("GET",), self._list_defaults, defaults),
            Route(f"{_DEFAULTS}/<rule>", ("GET",), self._get_default, defaults),
            Route(
                f"{_SUB}/locations/<loc>/operations/<op_id>", ("GET",), self._operation, OPERATIONS
            ),
        )

    # -- network interfaces

    def _list_nics(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        return json_response(200, {"value": [nic_document(roster, g) for g in roster.guests]})

    def _list_all_nics(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        return json_response(200, {"value": [nic_document(roster, g) for g in roster.guests]})

    def _get_nic(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        wanted = call.args["nic"].lower()
        vm = next((g for g in roster.guests if naming.nic_name(g.name).lower() == wanted), None)
        if vm is None:
            raise not_found(roster, NIC_TYPE, call.args["nic"])
        return json_response(200, nic_document(roster, vm))

    # -- network security groups

    def _list_nsgs(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        return json_response(200, {"value": self._nsg_documents(roster)})

    def _list_all_nsgs(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        return json_response(200, {"value": self._nsg_documents(roster)})

    def _get_nsg(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = _nsg_owner(roster, call.args["nsg"])
        with self._lock:
            return json_response(200, self._nsg_document(roster, vm))

    def _put_nsg(self, call: Call) -> Response:
        """Replace the NSG's rules with the body's ``securityRules`` (all or nothing)."""
        roster = resource_group(call.roster, call.args)
        vm = _owner_or_refuse(roster, call.args["nsg"])
        nsg = naming.nsg_name(vm.name)
        props = json_body(call.request).get("properties") or {}
        if not isinstance(props, dict):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: properties.")
        items = props.get("securityRules") or []
        if not isinstance(items, list):
            raise ArmError(400, "InvalidRequestFormat", "Cannot parse the request: securityRules.")
        rules = [self._parse_item(roster, vm, item) for item in items]
        check_rule_set(rules)
        with self._lock:
            before = self.store.rules(nsg)
            etags = {s.rule.name.lower(): s.etag for s in before}
            self.store.replace_all(
                nsg,
                [StoredRule(r, etags.get(r.name.lower()) or new_etag(), UPDATING) for r in rules],
            )
            op = self._begin(nsg, "createOrUpdate")
            document = self._nsg_document(roster, vm)
        run_in_background(self.operations, op, partial(self._settle_nsg, roster, vm, before))
        return self._accepted_put(call, roster, op, 200, document)

    def _delete_nsg(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        wanted = call.args["nsg"].lower()
        vm = next((g for g in roster.guests if naming.nsg_name(g.name).lower() == wanted), None)
        if vm is None:
            return Response(status=204)
        raise ArmError(
            400,
            "InUseNetworkSecurityGroupCannotBeDeleted",
            f"Network security group {naming.nsg_id(roster, vm.name)} cannot be deleted "
            "because it is in use by the following resources: "
            f"{naming.nic_id(roster, vm.name)}/ipConfigurations/ipconfig{vm.name}. In order "
            "to delete the Network security group, remove the association with the "
            "resource(s). To learn how to do this, see aka.ms/deletensg.",
        )

    # -- security rules

    def _list_rules(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = _nsg_owner(roster, call.args["nsg"])
        with self._lock:
            stored = self.store.rules(naming.nsg_name(vm.name))
        return json_response(200, {"value": [rule_document(roster, vm.name, s) for s in stored]})

    def _get_rule(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = _nsg_owner(roster, call.args["nsg"])
        with self._lock:
            stored = self.store.get(naming.nsg_name(vm.name), call.args["rule"])
        if stored is None:
            raise _rule_not_found(roster, vm, call.args["rule"])
        return json_response(200, rule_document(roster, vm.name, stored))

    def _put_rule(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = _nsg_owner(roster, call.args["nsg"])
        nsg = naming.nsg_name(vm.name)
        name = call.args["rule"]
        rule = parse_rule(name, json_body(call.request), rule_id(roster, vm.name, name))
        with self._lock:
            previous = self.store.get(nsg, name)
            check_conflicts(rule, (s.rule for s in self.store.rules(nsg)))
            if previous is not None:
                rule = replace(rule, name=previous.rule.name)  # ARM keeps the first spelling
            stored = StoredRule(rule, new_etag(), UPDATING)
            self.store.put(nsg, stored)
            op = self._begin(f"{nsg}/{rule.name}", "createOrUpdate")
        work = partial(self._settle_rule, roster, vm, rule.name, previous)
        run_in_background(self.operations, op, work)
        status = 201 if previous is None else 200
        return self._accepted_put(call, roster, op, status, rule_document(roster, vm.name, stored))

    def _delete_rule(self, call: Call) -> Response:
        """ARM's DELETE: 202 + operation while the host firewall changes; 204 when there
        is nothing to delete (ARM deletes are idempotent)."""
        roster = resource_group(call.roster, call.args)
        vm = _nsg_owner(roster, call.args["nsg"])
        nsg = naming.nsg_name(vm.name)
        with self._lock:
            stored = self.store.get(nsg, call.args["rule"])
            if stored is None:
                return Response(status=204)
            self.store.put(nsg, replace(stored, state=DELETING))
            op = self._begin(f"{nsg}/{stored.rule.name}", "delete")
        run_in_background(self.operations, op, partial(self._settle_delete, roster, vm, stored))
        return accepted(call.request, roster, op, self._retry_after)

    def _list_defaults(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = _nsg_owner(roster, call.args["nsg"])
        value = [default_rule_document(roster, vm.name, r) for r in DEFAULT_RULES]
        return json_response(200, {"value": value})

    def _get_default(self, call: Call) -> Response:
        roster = resource_group(call.roster, call.args)
        vm = _nsg_owner(roster, call.args["nsg"])
        docs = [default_rule_document(roster, vm.name, r) for r in DEFAULT_RULES]
        found = find_named(docs, call.args["rule"])
        if found is None:
            raise not_found(
                roster, DEFAULT_RULE_TYPE, f"{naming.nsg_name(vm.name)}/{call.args['rule']}"
            )
        return json_response(200, found)

    def _operation(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        return operation_response(
            call.request, self.operations, roster, NAMESPACE, call.args, self._retry_after
        )

    # -- the work of an operation: make the host firewall hold the stored rules

    def _settle_rule(
        self, roster: Roster, vm: GuestEntry, name: str, previous: StoredRule | None
    ) -> None:
        nsg = naming.nsg_name(vm.name)
        with self._lock:
            try:
                self._enforce(roster, vm)
            except FirewallError as exc:
                if previous is None:
                    self.store.remove(nsg, name)
                else:
                    self.store.put(nsg, previous)
                self._restore(roster, vm)
                raise _failed(exc) from exc
            current = self.store.get(nsg, name)
            if current is not None and current.state == UPDATING:  # not deleted meanwhile
                self.store.set_state(nsg, name, SUCCEEDED)

    def _settle_delete(self, roster: Roster, vm: GuestEntry, stored: StoredRule) -> None:
        nsg = naming.nsg_name(vm.name)
        with self._lock:
            try:
                self._enforce(roster, vm, without=stored.rule.name)
            except FirewallError as exc:
                self.store.put(nsg, stored)
                self._restore(roster, vm)
                raise _failed(exc) from exc
            self.store.remove(nsg, stored.rule.name)

    def _settle_nsg(self, roster: Roster, vm: GuestEntry, before: list[StoredRule]) -> None:
        nsg = naming.nsg_name(vm.name)
        with self._lock:
            try:
                self._enforce(roster, vm)
            except FirewallError as exc:
                self.store.replace_all(nsg, before)
                self._restore(roster, vm)
                raise _failed(exc) from exc
            self.store.replace_all(
                nsg, [replace(s, state=SUCCEEDED) for s in self.store.rules(nsg)]
            )

    def _enforce(self, roster: Roster, vm: GuestEntry, without: str | None = None) -> None:
        """Rewrite the VM's block from the store (rules being deleted left out)."""
        stored = self.store.rules(naming.nsg_name(vm.name))
        gone = (without or "").lower()
        rules = [s.rule for s in stored if s.state != DELETING and s.rule.name.lower() != gone]
        if enforce(self._firewall(roster.lab), roster, vm.name, rules):
            _log.info("%s: host firewall now holds %d NSG rule(s)", vm.name, len(rules))

    def _restore(self, roster: Roster, vm: GuestEntry) -> None:
        """After a failed change, put the firewall back to the store (best effort)."""
        try:
            self._enforce(roster, vm)
        except FirewallError as exc:
            _log.warning("%s: could not restore the host firewall's NSG rules: %s", vm.name, exc)

    # -- helpers

    def _begin(self, key: str, action: str) -> Operation:
        # One key per change, never refused: changes to an NSG queue on the provider's lock.
        return self.operations.begin(f"{key}#{new_etag()}", NsgChange(action), NAMESPACE)

    def _accepted_put(
        self, call: Call, roster: Roster, op: Operation, status: int, document: JsonObject
    ) -> Response:
        """Microsoft.Network's answer to a PUT: the resource as it is now (``Updating``)
        and the operation to poll (``Azure-AsyncOperation``)."""
        response = json_response(status, document)
        response.headers["Azure-AsyncOperation"] = operation_url(call.request, roster, op)
        response.headers["Retry-After"] = self._retry_after
        return response

    def _parse_item(self, roster: Roster, vm: GuestEntry, item: object) -> SecurityRule:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ArmError(
                400,
                "InvalidRequestFormat",
                "Cannot parse the request: a security rule has no name.",
            )
        name = str(item["name"])
        return parse_rule(name, item, rule_id(roster, vm.name, name))

    def _nsg_document(self, roster: Roster, vm: GuestEntry) -> JsonObject:
        return nsg_document(roster, vm.name, self.store.rules(naming.nsg_name(vm.name)))

    def _nsg_documents(self, roster: Roster) -> list[JsonObject]:
        with self._lock:
            return [self._nsg_document(roster, g) for g in roster.guests]


def _nsg_owner(roster: Roster, nsg: str) -> GuestEntry:
    """The VM whose NSG is called ``nsg`` (case-insensitive); ARM's 404 otherwise."""
    wanted = nsg.lower()
    vm = next((g for g in roster.guests if naming.nsg_name(g.name).lower() == wanted), None)
    if vm is None:
        raise not_found(roster, NSG_TYPE, nsg)
    return vm


def _owner_or_refuse(roster: Roster, nsg: str) -> GuestEntry:
    wanted = nsg.lower()
    vm = next((g for g in roster.guests if naming.nsg_name(g.name).lower() == wanted), None)
    if vm is None:
        names = ", ".join(naming.nsg_name(g.name) for g in roster.guests)
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Network security group '{nsg}' cannot be created in this lab: its NSGs are "
            f"its VMs' own ({names}), made with the lab.",
        )
    return vm


def _rule_not_found(roster: Roster, vm: GuestEntry, rule: str) -> ArmError:
    return not_found(roster, RULE_TYPE, f"{naming.nsg_name(vm.name)}/{rule}")


def _failed(exc: FirewallError) -> OperationError:
    return OperationError(
        f"The security rules could not be applied in the host firewall: {exc}",
        "InternalServerError",
    )
