"""What a client sends Microsoft.Support to open a ticket, read and checked field by field.

Azure refuses a create it cannot file with 400 and one message naming the field, so a
script's author sees which part of the payload is wrong; this module does the same for
the fields the 2024-04-01 API requires of a ticket (title, description, service and
problem classification from the catalog, severity, advanced diagnostic consent, the
contact details) and for the technical ticket's resource id, which must be a resource
of the caller's subscription.

Runs inside the twin's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.platform.arm.conventions import ArmError, JsonObject
from lab.platform.arm.support_documents import (
    ProblemClassification,
    SupportService,
    find_service,
)

SEVERITIES = ("minimal", "moderate", "critical", "highestcriticalimpact")
CONSENTS = ("Yes", "No")
CONTACT_METHODS = ("email", "phone")
CONTACT_FIELDS = (
    "firstName",
    "lastName",
    "preferredContactMethod",
    "primaryEmailAddress",
    "preferredTimeZone",
    "country",
    "preferredSupportLanguage",
)
MAX_TITLE = 200
MAX_DESCRIPTION = 10_000
_TICKET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CLASSIFICATION = re.compile(
    r"^/providers/Microsoft\.Support/services/(?P<service>[^/]+)"
    r"/problemClassifications/(?P<pc>[^/]+)$",
    re.IGNORECASE,
)
_SERVICE = re.compile(r"^/providers/Microsoft\.Support/services/(?P<service>[^/]+)$", re.I)
_RESOURCE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"(?P<namespace>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)(/.*)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TicketRequest:
    """A create request that Microsoft.Support would file."""

    properties: JsonObject
    service: SupportService
    classification: ProblemClassification
    resource_id: str | None


@dataclass(frozen=True)
class ResourceRef:
    """The parts of an ARM resource id a ticket names."""

    subscription: str
    resource_group: str
    namespace: str
    type: str
    name: str


def check_ticket_name(name: str) -> str:
    if not _TICKET_NAME.match(name):
        raise _bad(
            f"The support ticket name '{name}' is invalid: use 1-128 letters, digits, "
            "'-', '_' or '.', starting with a letter or digit."
        )
    return name


def read_ticket(body: JsonObject, subscription_id: str) -> TicketRequest:
    """The ticket a create body describes; ARM's 400 naming the first wrong field."""
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise _bad("The request must have a 'properties' object.")
    for name in ("title", "description"):
        _text(properties, name)
    if len(str(properties["title"])) > MAX_TITLE:
        raise _bad(f"'properties.title' is longer than {MAX_TITLE} characters.")
    if len(str(properties["description"])) > MAX_DESCRIPTION:
        raise _bad(f"'properties.description' is longer than {MAX_DESCRIPTION} characters.")
    service = _service(properties)
    classification = _classification(properties, service)
    severity = _text(properties, "severity")
    if severity.lower() not in SEVERITIES:
        raise _bad(
            f"'properties.severity' must be one of {', '.join(SEVERITIES)}; got '{severity}'."
        )
    consent = _text(properties, "advancedDiagnosticConsent")
    if consent not in CONSENTS:
        raise _bad(f"'properties.advancedDiagnosticConsent' must be Yes or No; got '{consent}'.")
    _contact(properties)
    if "require24X7Response" in properties and not isinstance(
        properties["require24X7Response"], bool
    ):
        raise _bad("'properties.require24X7Response' must be true or false.")
    resource_id = _resource_id(properties, subscription_id)
    checked = dict(properties)
    checked["severity"] = severity.lower()
    return TicketRequest(checked, service, classification, resource_id)


def parse_resource_id(resource_id: str) -> ResourceRef | None:
    match = _RESOURCE.match(resource_id)
    if match is None:
        return None
    return ResourceRef(match["sub"], match["rg"], match["namespace"], match["type"], match["name"])


def _service(properties: JsonObject) -> SupportService:
    service_id = _text(properties, "serviceId")
    match = _SERVICE.match(service_id)
    service = find_service(match["service"]) if match else None
    if service is None:
        raise _bad(
            f"'properties.serviceId' '{service_id}' is not a service of "
            "/providers/Microsoft.Support/services."
        )
    return service


def _classification(properties: JsonObject, service: SupportService) -> ProblemClassification:
    pc_id = _text(properties, "problemClassificationId")
    match = _CLASSIFICATION.match(pc_id)
    found = None
    if match and match["service"].lower() == service.name.lower():
        wanted = match["pc"].lower()
        found = next((c for c in service.classifications if c.name.lower() == wanted), None)
    if found is None:
        raise _bad(
            f"'properties.problemClassificationId' '{pc_id}' is not a problem "
            f"classification of service '{service.display_name}'."
        )
    return found


def _contact(properties: JsonObject) -> None:
    contact = properties.get("contactDetails")
    if not isinstance(contact, dict):
        raise _bad("The request must have a 'properties.contactDetails' object.")
    for name in CONTACT_FIELDS:
        _text(contact, name, f"properties.contactDetails.{name}")
    method = str(contact["preferredContactMethod"])
    if method.lower() not in CONTACT_METHODS:
        raise _bad(
            "'properties.contactDetails.preferredContactMethod' must be email or phone; "
            f"got '{method}'."
        )
    if "@" not in str(contact["primaryEmailAddress"]):
        raise _bad("'properties.contactDetails.primaryEmailAddress' is not an email address.")


def _resource_id(properties: JsonObject, subscription_id: str) -> str | None:
    details = properties.get("technicalTicketDetails")
    if details is None:
        return None
    if not isinstance(details, dict):
        raise _bad("'properties.technicalTicketDetails' must be an object.")
    if details.get("resourceId") is None:
        return None
    resource_id = _text(details, "resourceId", "properties.technicalTicketDetails.resourceId")
    ref = parse_resource_id(resource_id)
    if ref is None or ref.subscription.lower() != subscription_id.lower():
        raise _bad(
            f"'properties.technicalTicketDetails.resourceId' '{resource_id}' is not a "
            f"resource of subscription '{subscription_id}'."
        )
    return resource_id


def _text(doc: JsonObject, name: str, path: str | None = None) -> str:
    where = path or f"properties.{name}"
    value = doc.get(name)
    if value is None:
        raise _bad(f"The request is missing the required field '{where}'.")
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"'{where}' must be a non-empty string.")
    return value


def _bad(message: str) -> ArmError:
    return ArmError(400, "BadRequest", message)
