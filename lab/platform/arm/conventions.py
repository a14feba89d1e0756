"""ARM's conventions, shared by every resource provider the twin serves.

What a client of real ARM relies on whichever provider it calls: a bearer token, an
``api-version`` the resource type knows (ARM refuses others with
``NoRegisteredProviderFound`` and the list it supports), error bodies
``{"error": {"code", "message"}}``, the subscription and resource group in the URL, and
names compared without regard to case. The request-id headers are added by
:mod:`lab.platform.arm.app` to every answer.

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from werkzeug.wrappers import Request, Response

from lab.platform.arm import access_token
from lab.platform.roster import GuestEntry, Roster

JsonObject = dict[str, object]

_API_VERSION_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


class ArmError(Exception):
    """A request ARM itself would refuse; carries the HTTP status and ARM error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ResourceType:
    """A resource type as ARM registers it: its namespace, type name and the api-versions
    it answers. Real ARM keeps such a list per type (``az provider show``); the lab's
    lists hold Azure's published versions up to those the pinned SDKs and ``az`` send."""

    namespace: str
    name: str
    api_versions: frozenset[str]

    def require_api_version(self, request: Request, location: str) -> None:
        """Refuse a request whose api-version this type does not answer, as ARM does."""
        version = request.args.get("api-version", "")
        if not version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if not _API_VERSION_SHAPE.match(version):
            raise ArmError(
                400, "InvalidApiVersionParameter", f"The api-version '{version}' is invalid."
            )
        if version not in self.api_versions:
            supported = ", ".join(sorted(self.api_versions))
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location '{location}' and API "
                f"version '{version}' for type '{self.name}'. The supported api-versions "
                f"are '{supported}'.",
            )


def api_versions(*versions: str) -> frozenset[str]:
    """A type's api-versions, checked for shape once, where they are written."""
    for version in versions:
        if not _API_VERSION_SHAPE.match(version):
            raise ValueError(f"not an api-version: {version!r}")
    return frozenset(versions)


def authenticate(request: Request, token: bytes) -> None:
    """Accept only the lab's bearer token, or a current token its managed identity
    issued (:mod:`lab.platform.arm.access_token`); ARM's 401 codes otherwise."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is not a bearer token.",
        )
    bearer = presented.strip()
    if hmac.compare_digest(bearer.encode("utf-8", "surrogateescape"), token):
        return
    try:  # or a JWT the lab's managed identity issued
        access_token.verify(bearer, token, int(time.time()))
    except access_token.TokenRejected as exc:
        raise ArmError(401, exc.code, exc.message) from exc


def subscription(roster: Roster, sub: str) -> Roster:
    """The roster if ``sub`` is the lab's subscription; ARM's 404 otherwise."""
    if sub.lower() != roster.subscription_id.lower():
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found.")
    return roster


def resource_group(roster: Roster, args: Mapping[str, str]) -> Roster:
    """The roster if the URL names the lab's subscription and resource group."""
    subscription(roster, args["sub"])
    if args["rg"].lower() != roster.resource_group.lower():
        raise ArmError(
            404, "ResourceGroupNotFound", f"Resource group '{args['rg']}' could not be found."
        )
    return roster


def guest(roster: Roster, name: str, resource_type: str) -> GuestEntry:
    """The roster entry for VM ``name``; VM names are case-insensitive in Azure."""
    wanted = name.lower()
    found = next((g for g in roster.guests if g.name.lower() == wanted), None)
    if found is None:
        raise not_found(roster, resource_type, name)
    return found


def not_found(roster: Roster, resource_type: str, name: str) -> ArmError:
    """ARM's 404 for a resource that does not exist in the lab's resource group."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource_type}/{name}' under resource group "
        f"'{roster.resource_group}' was not found.",
    )


def find_named(items: Iterable[JsonObject], name: str) -> JsonObject | None:
    """The item whose ``name`` equals ``name`` regardless of case, as ARM compares."""
    wanted = name.lower()
    return next((i for i in items if str(i.get("name", "")).lower() == wanted), None)


def json_body(request: Request) -> JsonObject:
    """The request's JSON object; ARM's 400 for anything else."""
    try:
        body = json.loads(request.get_data(as_text=True) or "null")
    except ValueError as exc:
        raise ArmError(
            400, "InvalidRequestContent", f"The request content was invalid: {exc}"
        ) from exc
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def wants_instance_view(request: Request) -> bool:
    return request.args.get("$expand", "").lower() == "instanceview"


def error_document(code: str, message: str) -> JsonObject:
    """An ARM error body: how ARM answers every request it refuses or cannot serve."""
    return {"error": {"code": code, "message": message}}


def json_response(status: int, body: JsonObject) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response(status, error_document(code, message))
