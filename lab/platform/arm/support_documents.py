"""Microsoft.Support's documents as the twin shows them: the service catalog, support
tickets and their communications, in the shapes of the 2024-04-01 API
(``specification/support/resource-manager/Microsoft.Support/stable/2024-04-01``).

The catalog is the lab's own, kept small: the services a backup engineer files under
("Azure Backup", "Virtual Machine running Linux") and the three Azure lists as fixed
ids for billing, subscription management and quota issues. Those three ids and the
Linux VM service's id are Azure's, from Microsoft's public examples; Azure Backup's id
and every problem classification's id are the lab's (stable, derived from their names),
because Microsoft publishes no list of them: a client must list the catalog and pick by
name, as Microsoft tells API users to do anyway.

Runs inside the twin's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lab.platform.arm.conventions import JsonObject

NAMESPACE = "Microsoft.Support"
SERVICES_PREFIX = f"/providers/{NAMESPACE}/services"
SERVICE_TYPE = f"{NAMESPACE}/services"
CLASSIFICATION_TYPE = f"{NAMESPACE}/problemClassifications"
TICKET_TYPE = f"{NAMESPACE}/supportTickets"
COMMUNICATION_TYPE = f"{NAMESPACE}/communications"
# The lab's subscription has this support plan; its response times per severity.
SUPPORT_PLAN = "Standard"
SLA_MINUTES = {"minimal": 480, "moderate": 240, "critical": 60, "highestcriticalimpact": 60}
_LAB_IDS = uuid.UUID("0b5e3d2a-8c41-5f7e-9a16-5375707070f2")


def _lab_id(name: str) -> str:
    """A stable id for a catalog entry whose real id Microsoft does not publish."""
    return str(uuid.uuid5(_LAB_IDS, name))


@dataclass(frozen=True)
class ProblemClassification:
    name: str  # its id's last segment (a GUID)
    display_name: str


@dataclass(frozen=True)
class SupportService:
    name: str  # a GUID
    display_name: str
    resource_types: tuple[str, ...]
    classifications: tuple[ProblemClassification, ...]

    @property
    def id(self) -> str:
        return f"{SERVICES_PREFIX}/{self.name}"

    def classification_id(self, pc: ProblemClassification) -> str:
        return f"{self.id}/problemClassifications/{pc.name}"


def _service(
    name: str, display: str, types: tuple[str, ...], classifications: tuple[str, ...]
) -> SupportService:
    return SupportService(
        name=name,
        display_name=display,
        resource_types=types,
        classifications=tuple(
            ProblemClassification(_lab_id(f"{display}/{c}"), c) for c in classifications
        ),
    )


_VM_TYPES = ("MICROSOFT.CLASSICCOMPUTE/VIRTUALMACHINES", "MICROSOFT.COMPUTE/VIRTUALMACHINES")

CATALOG: tuple[SupportService, ...] = (
    _service(
        "517f2da6-78fd-0498-4e22-ad26996b1dfc",
        "Billing",
        (),
        ("Refund request", "Invoice or billing statement questions"),
    ),
    _service(
        "f3dc5421-79ef-1efa-41a5-42bf3cbb52c6",
        "Subscription management",
        (),
        ("Subscription transfer", "Cancel my subscription"),
    ),
    _service(
        "06bfd9d3-516b-d5c6-5802-169c800dec89",
        "Service and subscription limits (quotas)",
        (),
        ("Compute-VM (cores-vCPUs) subscription limit increases",),
    ),
    _service(
        _lab_id("Azure Backup"),
        "Azure Backup",
        ("MICROSOFT.RECOVERYSERVICES/VAULTS", *_VM_TYPES),
        (
            "Backup of Azure VMs / VM agent or backup extension errors",
            "Backup of Azure VMs / Backup job failed or timed out",
            "Backup of Azure VMs / Backup policy and schedule",
            "Restore of Azure VMs / Restore failed",
        ),
    ),
    _service(
        "cddd3eb5-1830-b494-44fd-782f691479dc",
        "Virtual Machine running Linux",
        _VM_TYPES,
        (
            "Connectivity / Cannot connect to virtual machine by using RDP or SSH",
            "VM extensions and the VM agent / Extension failed to install or update",
            "VM extensions and the VM agent / VM agent not ready",
            "VM start, stop or restart / VM does not start",
        ),
    ),
)


def find_service(name: str) -> SupportService | None:
    wanted = name.lower()
    return next((s for s in CATALOG if s.name.lower() == wanted), None)


def service_document(service: SupportService) -> JsonObject:
    return {
        "id": service.id,
        "name": service.name,
        "type": SERVICE_TYPE,
        "properties": {
            "displayName": service.display_name,
            "resourceTypes": list(service.resource_types),
        },
    }


def classification_document(service: SupportService, pc: ProblemClassification) -> JsonObject:
    return {
        "id": service.classification_id(pc),
        "name": pc.name,
        "type": CLASSIFICATION_TYPE,
        "properties": {"displayName": pc.display_name},
    }


@dataclass(frozen=True)
class Communication:
    """One message in a ticket: Microsoft's (``inbound`` to the customer) or theirs."""

    name: str
    subject: str
    body: str
    sender: str
    direction: str  # "inbound" (Microsoft's) or "outbound" (the customer's)
    created: datetime


@dataclass
class Ticket:
    """A support ticket as Microsoft.Support keeps it; ``request`` is what the customer
    sent (its ``properties``), checked by :mod:`~lab.platform.arm.support_requests`."""

    name: str
    ticket_id: str
    request: JsonObject
    service: SupportService
    classification: ProblemClassification
    created: datetime
    status: str = "Open"
    modified: datetime | None = None
    communications: list[Communication] = field(default_factory=list)


def ticket_resource_id(subscription_id: str, name: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/{TICKET_TYPE}/{name}"


def ticket_document(subscription_id: str, ticket: Ticket) -> JsonObject:
    """A ``SupportTicketDetails`` resource: what the customer sent, and what Microsoft
    adds (ids, display names, plan, SLA, status, dates)."""
    request = ticket.request
    severity = str(request["severity"])
    sla = SLA_MINUTES.get(severity, 240)
    properties: JsonObject = {
        "supportTicketId": ticket.ticket_id,
        "description": request["description"],
        "problemClassificationId": ticket.service.classification_id(ticket.classification),
        "problemClassificationDisplayName": ticket.classification.display_name,
        "severity": severity,
        "require24X7Response": bool(request.get("require24X7Response", False)),
        "advancedDiagnosticConsent": request["advancedDiagnosticConsent"],
        "contactDetails": request["contactDetails"],
        "serviceLevelAgreement": {
            "startTime": _timestamp(ticket.created),
            "expirationTime": _timestamp(ticket.created + timedelta(minutes=sla)),
            "slaMinutes": sla,
        },
        "supportEngineer": {"emailAddress": None},
        "supportPlanType": SUPPORT_PLAN,
        "supportPlanDisplayName": SUPPORT_PLAN,
        "title": request["title"],
        "serviceId": ticket.service.id,
        "serviceDisplayName": ticket.service.display_name,
        "status": ticket.status,
        "createdDate": _timestamp(ticket.created),
        "modifiedDate": _timestamp(ticket.modified or ticket.created),
        "isTemporaryTicket": "No",
    }
    for optional in ("technicalTicketDetails", "problemStartTime", "secondaryConsent"):
        if optional in request:
            properties[optional] = request[optional]
    return {
        "id": ticket_resource_id(subscription_id, ticket.name),
        "name": ticket.name,
        "type": TICKET_TYPE,
        "properties": properties,
    }


def communication_document(
    subscription_id: str, ticket: Ticket, message: Communication
) -> JsonObject:
    return {
        "id": f"{ticket_resource_id(subscription_id, ticket.name)}/communications/{message.name}",
        "name": message.name,
        "type": COMMUNICATION_TYPE,
        "properties": {
            "subject": message.subject,
            "body": message.body,
            "communicationType": "web",
            "communicationDirection": message.direction,
            "sender": message.sender,
            "createdDate": _timestamp(message.created),
        },
    }


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
