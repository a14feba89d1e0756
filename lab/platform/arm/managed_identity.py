"""The lab's managed identity: the token endpoint that Azure's own credentials ask.

On an Azure host (App Service, Functions, a Cloud Shell-like runner) a managed identity
is found through two environment variables: ``IDENTITY_ENDPOINT`` (a local URL) and
``IDENTITY_HEADER`` (a secret sent back as ``X-IDENTITY-HEADER``). ``azure-identity``'s
``DefaultAzureCredential`` and ``az login --identity`` use them unchanged, so a runbook
written for Azure (``DefaultAzureCredential()``, no lab import) gets the lab's token when
``snaplab env`` sets them. The request is ``GET <endpoint>?api-version=2019-08-01&resource=R``
and the answer ``{access_token, expires_on, resource, token_type, client_id}``, with
``expires_on`` in epoch seconds, as App Service answers.

The token is a JWT with the claims of Azure's managed-identity tokens, signed with the
lab's bearer token (:mod:`lab.platform.arm.access_token`): ``az login --identity`` reads
its tenant (``tid``) from it, and the twin accepts it until it expires. The header
secret is the lab's bearer token itself (whoever holds the exports holds both).

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

import hmac
import time
import uuid

from werkzeug.wrappers import Request, Response

from lab.platform.arm import naming
from lab.platform.arm.access_token import Identity, issue
from lab.platform.arm.conventions import json_response

PATH = "/msi/token"
API_VERSION = "2019-08-01"
HEADER = "X-IDENTITY-HEADER"
TOKEN_LIFETIME_SECONDS = 3600
_CLIENT_ID_NAMESPACE = uuid.UUID("1d0a6f40-6c1e-5b8e-8a3c-736e61706c61")


def token_response(request: Request, token: bytes, lab: str) -> Response:
    """The App Service identity endpoint's answer (or its 400/401, as JSON)."""
    presented = request.headers.get(HEADER, "").encode("utf-8", "surrogateescape")
    if not presented or not hmac.compare_digest(presented, token):
        return json_response(
            401, {"error": "unauthorized", "error_description": f"{HEADER} is missing or wrong"}
        )
    if request.args.get("api-version") != API_VERSION:
        return json_response(
            400,
            {
                "error": "invalid_request",
                "error_description": f"api-version must be {API_VERSION}",
            },
        )
    resource = request.args.get("resource", "")
    if not resource:
        return json_response(
            400, {"error": "invalid_request", "error_description": "resource is required"}
        )
    client_id = str(uuid.uuid5(_CLIENT_ID_NAMESPACE, lab))
    now = int(time.time())
    identity = Identity(tenant_id=naming.tenant_id(lab), client_id=client_id)
    return json_response(
        200,
        {
            "access_token": issue(token, identity, resource, now, TOKEN_LIFETIME_SECONDS),
            "expires_on": str(now + TOKEN_LIFETIME_SECONDS),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        },
    )
