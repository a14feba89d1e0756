"""Microsoft.Support as the twin serves it: the service catalog, support tickets and
their communications, for the unmodified ``azure-mgmt-support``.

An engineer who cannot fix a cause on their side (a damaged extension release is the
publisher's) opens a support case through this API, as on Azure, and reads Microsoft's
answer in the case's communications. Creating a ticket is a long-running operation
(202, polled under ``operationsStatus``/``operationResults``); the ticket is filed
``Open`` at once and Microsoft's side answers later, after
:data:`~lab.platform.timescale.SUPPORT_ROLLBACK_RESPONSE` on the lab's Azure clock
(:mod:`~lab.platform.arm.support_engineer` decides what it says, from the ticket's
words and the publisher's knowledge of its packages).

Routes (``S`` = ``/subscriptions/<sub>/providers/Microsoft.Support``)::

    GET  /providers/Microsoft.Support/services[/<service>]
    GET  /providers/Microsoft.Support/services/<service>/problemClassifications[/<pc>]
    POST S/checkNameAvailability               {"name", "type"} -> nameAvailable
    GET  S/supportTickets[?$filter=status eq 'Open'&$top=N]
    GET  S/supportTickets/<name>
    PUT  S/supportTickets/<name>               create: 202 with Azure-AsyncOperation
    GET  S/supportTickets/<name>/communications[/<message>]
    GET  S/operationsStatus/<op>, S/operationResults/<op>

Tickets are kept in the twin's memory: a restart of its container forgets them. Shapes
follow the 2024-04-01 API; the catalog is described in
:mod:`~lab.platform.arm.support_documents`, requests are checked in
:mod:`~lab.platform.arm.support_requests`.

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from lab.platform.arm.conventions import (
    ArmError,
    JsonObject,
    ResourceType,
    api_versions,
    json_body,
    json_response,
    subscription,
)
from lab.platform.arm.lro import operation_document
from lab.platform.arm.operations import OperationStore
from lab.platform.arm.provider import Call, Route
from lab.platform.arm.support_documents import (
    CATALOG,
    NAMESPACE,
    Communication,
    SupportService,
    Ticket,
    classification_document,
    communication_document,
    find_service,
    service_document,
    ticket_document,
)
from lab.platform.arm.support_engineer import SENDER, Publisher, answer_case
from lab.platform.arm.support_requests import check_ticket_name, parse_resource_id, read_ticket
from lab.platform.roster import Roster
from lab.platform.timescale import SUPPORT_ROLLBACK_RESPONSE

_log = logging.getLogger("lab.platform.arm")

# Azure's published api-versions of Microsoft.Support; azure-mgmt-support 7.0.0 sends
# 2024-04-01.
_API_VERSIONS = api_versions(
    "2019-05-01-preview",
    "2020-04-01",
    "2021-06-01-preview",
    "2022-09-01-preview",
    "2023-06-01-preview",
    "2024-04-01",
)
SERVICES = ResourceType(NAMESPACE, "services", _API_VERSIONS)
CLASSIFICATIONS = ResourceType(NAMESPACE, "services/problemClassifications", _API_VERSIONS)
TICKETS = ResourceType(NAMESPACE, "supportTickets", _API_VERSIONS)
COMMUNICATIONS = ResourceType(NAMESPACE, "supportTickets/communications", _API_VERSIONS)
OPERATIONS = ResourceType(NAMESPACE, "operationsStatus", _API_VERSIONS)
NAME_CHECK = ResourceType(NAMESPACE, "checkNameAvailability", _API_VERSIONS)

_P = f"/providers/{NAMESPACE}/services"
_S = f"/subscriptions/<sub>/providers/{NAMESPACE}"
_STATUS_FILTER = re.compile(r"^\s*status\s+eq\s+'(?P<status>Open|Closed)'\s*$", re.IGNORECASE)

# Runs ``work`` after ``delay`` lab seconds (a daemon timer; tests run it at once).
Schedule = Callable[[float, Callable[[], None]], None]


class FileTicket:
    """The operation that files a ticket (its ``value`` names it in logs)."""

    value = "createSupportTicket"


def timer(delay: float, work: Callable[[], None]) -> None:
    thread = threading.Timer(delay, work)
    thread.daemon = True
    thread.name = "support-case"
    thread.start()


class SupportProvider:
    """Microsoft.Support: the catalog, the tickets and Microsoft's answers in them."""

    def __init__(
        self,
        publisher: Publisher,
        operations: OperationStore,
        *,
        schedule: Schedule = timer,
        retry_after: str = "1",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._publisher = publisher
        self.operations = operations
        self._schedule = schedule
        self._retry_after = retry_after
        self._clock = clock or (lambda: datetime.now(UTC))
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)

    def routes(self) -> Sequence[Route]:
        return (
            Route(_P, ("GET",), self._services, SERVICES),
            Route(f"{_P}/<service>", ("GET",), self._service, SERVICES),
            Route(f"{_P}/<service>/problemClassifications", ("GET",), self._pcs, CLASSIFICATIONS),
            Route(
                f"{_P}/<service>/problemClassifications/<pc>", ("GET",), self._pc, CLASSIFICATIONS
            ),
            Route(f"{_S}/checkNameAvailability", ("POST",), self._name_check, NAME_CHECK),
            Route(f"{_S}/supportTickets", ("GET",), self._list, TICKETS),
            Route(f"{_S}/supportTickets/<name>", ("GET",), self._get, TICKETS),
            Route(f"{_S}/supportTickets/<name>", ("PUT",), self._create, TICKETS),
            Route(
                f"{_S}/supportTickets/<name>/communications",
                ("GET",),
                self._communications,
                COMMUNICATIONS,
            ),
            Route(
                f"{_S}/supportTickets/<name>/communications/<message>",
                ("GET",),
                self._communication,
                COMMUNICATIONS,
            ),
            Route(
                f"{_S}/<any(operationsStatus, operationResults):kind>/<op_id>",
                ("GET",),
                self._operation,
                OPERATIONS,
            ),
        )

    # ------------------------------------------------------------------ catalog

    def _services(self, call: Call) -> Response:
        return json_response(200, {"value": [service_document(s) for s in CATALOG]})

    def _service(self, call: Call) -> Response:
        return json_response(200, service_document(_catalog_service(call.args["service"])))

    def _pcs(self, call: Call) -> Response:
        service = _catalog_service(call.args["service"])
        docs = [classification_document(service, pc) for pc in service.classifications]
        return json_response(200, {"value": docs})

    def _pc(self, call: Call) -> Response:
        service = _catalog_service(call.args["service"])
        wanted = call.args["pc"].lower()
        pc = next((c for c in service.classifications if c.name.lower() == wanted), None)
        if pc is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"Problem classification '{call.args['pc']}' was not found for service "
                f"'{service.display_name}'.",
            )
        return json_response(200, classification_document(service, pc))

    # ------------------------------------------------------------------ tickets

    def _name_check(self, call: Call) -> Response:
        subscription(call.roster, call.args["sub"])
        body = json_body(call.request)
        name, kind = body.get("name"), body.get("type")
        if not isinstance(name, str) or not name:
            raise ArmError(400, "BadRequest", "The request is missing the required field 'name'.")
        if kind != "Microsoft.Support/supportTickets":
            raise ArmError(400, "BadRequest", "'type' must be 'Microsoft.Support/supportTickets'.")
        with self._lock:
            taken = name.lower() in self._tickets
        doc: JsonObject = {"nameAvailable": not taken}
        if taken:
            doc["reason"] = "AlreadyExists"
            doc["message"] = f"A support ticket named '{name}' already exists."
        return json_response(200, doc)

    def _list(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        status = _status_filter(call.request.args.get("$filter"))
        with self._lock:
            tickets = sorted(self._tickets.values(), key=lambda t: t.created, reverse=True)
            docs = [
                ticket_document(roster.subscription_id, t)
                for t in tickets
                if status is None or t.status.lower() == status
            ]
        top = call.request.args.get("$top")
        if top is not None:
            if not top.isdigit() or not 1 <= int(top) <= 100:
                raise ArmError(400, "BadRequest", "'$top' must be a number from 1 to 100.")
            docs = docs[: int(top)]
        return json_response(200, {"value": docs})

    def _get(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        with self._lock:
            return json_response(
                200, ticket_document(roster.subscription_id, self._ticket(call.args["name"]))
            )

    def _create(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        name = check_ticket_name(call.args["name"])
        request = read_ticket(json_body(call.request), roster.subscription_id)
        now = self._clock()
        ticket = Ticket(
            name=name,
            ticket_id=f"{now:%y%m%d}0010{next(self._numbers):05d}",
            request=request.properties,
            service=request.service,
            classification=request.classification,
            created=now,
        )
        with self._lock:
            if name.lower() in self._tickets:
                raise ArmError(409, "Conflict", f"A support ticket named '{name}' already exists.")
            self._tickets[name.lower()] = ticket
        op = self.operations.begin(f"supportTickets/{name.lower()}", FileTicket(), NAMESPACE)
        self.operations.finish(op.id)  # filed at once; Microsoft's answer comes later
        vm = _lab_vm(roster, request.resource_id)
        delay = SUPPORT_ROLLBACK_RESPONSE.lab_seconds(roster.time_scale)
        _log.info("support ticket %s filed (VM %s); answer in %.1f s", name, vm, delay)
        self._schedule(delay, lambda: self.answer(name, vm))
        return _accepted(call, op.id, self._retry_after)

    def answer(self, name: str, vm: str | None) -> None:
        """Microsoft's side: check the case, act, and answer it in the ticket."""
        with self._lock:
            ticket = self._tickets.get(name.lower())
        if ticket is None:
            return
        answer = answer_case(
            str(ticket.request["title"]),
            str(ticket.request["description"]),
            vm,
            self._publisher,
        )
        if answer.withdrawn:
            _log.warning("support ticket %s: rolled back %s", name, ", ".join(answer.withdrawn))
        now = self._clock()
        with self._lock:
            ticket.communications.append(
                Communication(
                    name=f"{ticket.ticket_id}-{len(ticket.communications) + 1}",
                    subject=answer.subject,
                    body=answer.body,
                    sender=SENDER,
                    direction="inbound",
                    created=now,
                )
            )
            ticket.modified = now
            if answer.close:
                ticket.status = "Closed"

    def _communications(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        with self._lock:
            ticket = self._ticket(call.args["name"])
            docs = [
                communication_document(roster.subscription_id, ticket, m)
                for m in ticket.communications
            ]
        return json_response(200, {"value": docs})

    def _communication(self, call: Call) -> Response:
        roster = subscription(call.roster, call.args["sub"])
        wanted = call.args["message"].lower()
        with self._lock:
            ticket = self._ticket(call.args["name"])
            message = next((m for m in ticket.communications if m.name.lower() == wanted), None)
            if message is None:
                raise ArmError(
                    404,
                    "ResourceNotFound",
                    f"Communication '{call.args['message']}' was not found in support "
                    f"ticket '{ticket.name}'.",
                )
            return json_response(
                200, communication_document(roster.subscription_id, ticket, message)
            )

    def _operation(self, call: Call) -> Response:
        subscription(call.roster, call.args["sub"])
        op = self.operations.get(call.args["op_id"])
        if op is None or op.namespace != NAMESPACE:
            raise ArmError(404, "NotFound", f"Operation '{call.args['op_id']}' was not found.")
        if call.args["kind"] == "operationResults" and op.ended is None:
            response = Response(status=202)
            response.headers["Retry-After"] = self._retry_after
            return response
        return json_response(200, operation_document(op))

    def _ticket(self, name: str) -> Ticket:
        """A ticket by name (call with the lock held); ARM's 404 if there is none."""
        ticket = self._tickets.get(name.lower())
        if ticket is None:
            raise ArmError(404, "ResourceNotFound", f"The support ticket '{name}' was not found.")
        return ticket


def _catalog_service(name: str) -> SupportService:
    service = find_service(name)
    if service is None:
        raise ArmError(404, "ResourceNotFound", f"Service '{name}' was not found.")
    return service


def _status_filter(raw: str | None) -> str | None:
    if raw is None:
        return None
    match = _STATUS_FILTER.match(raw)
    if match is None:
        raise ArmError(
            400, "BadRequest", f"'$filter' supports only status eq 'Open' or 'Closed'; got {raw!r}."
        )
    return match["status"].lower()


def _lab_vm(roster: Roster, resource_id: str | None) -> str | None:
    """The lab VM a ticket's resource id names, or None."""
    ref = parse_resource_id(resource_id or "")
    if (
        ref is None
        or ref.namespace.lower() != "microsoft.compute"
        or ref.type.lower() != "virtualmachines"
        or ref.resource_group.lower() != roster.resource_group.lower()
    ):
        return None
    wanted = ref.name.lower()
    return next((g.name for g in roster.guests if g.name.lower() == wanted), None)


def _accepted(call: Call, op_id: str, retry_after: str) -> Response:
    """Azure's 202 for a ticket being filed: where to poll, as Microsoft.Support says."""
    base = (
        f"{call.request.host_url.rstrip('/')}/subscriptions/{call.roster.subscription_id}"
        f"/providers/{NAMESPACE}"
    )
    query = urlencode({"api-version": call.request.args["api-version"]})
    response = Response(status=202)
    response.headers["Azure-AsyncOperation"] = f"{base}/operationsStatus/{op_id}?{query}"
    response.headers["Location"] = f"{base}/operationResults/{op_id}?{query}"
    response.headers["Retry-After"] = retry_after
    return response
