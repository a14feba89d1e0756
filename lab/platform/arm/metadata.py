"""Resource Manager's cloud metadata: ``GET /metadata/endpoints?api-version=2022-09-01``.

``az cloud register -n NAME --endpoint-resource-manager URL`` asks this (without a
token) to learn the rest of a cloud's endpoints, as it does for Azure Stack Hub and the
sovereign clouds; the answer is one cloud object (``name``, ``resourceManager``,
``authentication`` with its ``audiences``, ``suffixes``, ...). The lab's cloud points every
endpoint az needs at the twin itself, with the URL the client used (the twin listens on
127.0.0.1 on the lab's port): Resource Manager and the audience tokens are asked for
(the lab's managed identity hands out tokens for any audience). The login endpoint is
the twin too; it serves no interactive sign-in, so ``az login --identity`` is the way in.
az builds the URL by appending ``/metadata/endpoints`` to what was typed, so a trailing
slash gives ``//metadata``: any run of slashes counts as one, as Azure's front door does.

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

import re

from werkzeug.wrappers import Request, Response

from lab.platform.arm.conventions import JsonObject, error_response, json_response

PATH = "/metadata/endpoints"
API_VERSION = "2022-09-01"
CLOUD_NAME = "snaplab"
_SLASHES = re.compile(r"/{2,}")


def serves(request: Request) -> bool:
    """Whether ``request`` asks for the cloud metadata (any run of slashes as one)."""
    return request.method == "GET" and _SLASHES.sub("/", request.path).rstrip("/") == PATH


def endpoints_response(request: Request) -> Response:
    """The lab's cloud, or ARM's 400 for an api-version this endpoint does not answer."""
    version = request.args.get("api-version", "")
    if not version:
        return error_response(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version != API_VERSION:
        return error_response(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{API_VERSION}'.",
        )
    return json_response(200, cloud_document(request.host_url))


def cloud_document(base_url: str) -> JsonObject:
    """The cloud object for a twin reached at ``base_url`` (``https://127.0.0.1:PORT/``)."""
    root = base_url if base_url.endswith("/") else f"{base_url}/"
    return {
        "name": CLOUD_NAME,
        "resourceManager": root,
        "portal": root,
        "authentication": {
            "loginEndpoint": root,
            "audiences": [root],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        # No data-plane services behind the lab's Resource Manager (its storage is
        # Azurite, reached by the guests, not through ARM), so no suffixes.
        "suffixes": {},
    }
