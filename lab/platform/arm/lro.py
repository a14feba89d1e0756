"""ARM's long-running operation protocol, as every resource provider of the twin answers it.

A request that starts slow work is answered 202 (or 201 for a create) with
``Azure-AsyncOperation`` (the operation resource, polled until its ``status`` is final)
and ``Location`` (202 while running, then the result). The SDKs' pollers and ``az`` use
either; the run command result, for one, is read from ``Location``. Each provider
polls under its own namespace
(``/subscriptions/S/providers/<namespace>/locations/L/operations/ID``), so the operation
records its namespace and is found only under it.

Runs inside the twin's container on Debian's Python: stdlib and Werkzeug only.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request, Response

from lab.platform.arm.conventions import ArmError, JsonObject, error_response, json_response
from lab.platform.arm.operations import Operation, OperationStore
from lab.platform.roster import Roster


def operation_url(request: Request, roster: Roster, op: Operation) -> str:
    query = urlencode({"api-version": request.args["api-version"]})
    return (
        f"{request.host_url.rstrip('/')}/subscriptions/{roster.subscription_id}"
        f"/providers/{op.namespace}/locations/{quote(roster.location)}"
        f"/operations/{op.id}?{query}"
    )


def accepted(request: Request, roster: Roster, op: Operation, retry_after: str) -> Response:
    """ARM's 202 for a long-running operation: where to poll, and how often."""
    monitor = operation_url(request, roster, op)
    response = Response(status=202)
    response.headers["Azure-AsyncOperation"] = monitor
    response.headers["Location"] = monitor + "&monitor=true"
    response.headers["Retry-After"] = retry_after
    return response


def operation_document(op: Operation) -> JsonObject:
    """An ARM operation resource (what ``Azure-AsyncOperation`` points at)."""
    doc: JsonObject = {
        "name": op.id,
        "status": op.status,
        "startTime": op.started.isoformat(),
    }
    if op.ended is not None:
        doc["endTime"] = op.ended.isoformat()
    if op.error is not None:
        doc["error"] = {"code": op.error_code, "message": op.error}
    return doc


def operation_response(
    request: Request,
    operations: OperationStore,
    roster: Roster,
    namespace: str,
    args: dict[str, str],
    retry_after: str,
) -> Response:
    """``GET .../providers/<namespace>/locations/<loc>/operations/<id>``, both flavours."""
    op = operations.get(args["op_id"])
    if (
        op is None
        or op.namespace.lower() != namespace.lower()
        or args["loc"].lower() != roster.location.lower()
    ):
        raise ArmError(404, "NotFound", f"Operation {args['op_id']!r} was not found.")
    if request.args.get("monitor", "").lower() == "true":
        return _location_monitor(op, retry_after)
    response = json_response(200, operation_document(op))
    if op.ended is None:
        response.headers["Retry-After"] = retry_after
    return response


def _location_monitor(op: Operation, retry_after: str) -> Response:
    """The ``Location`` flavour: 202 while running; when done, the result (200) or
    nothing (204 for a delete, 200 otherwise); ARM's error if it failed."""
    if op.ended is None:
        response = Response(status=202)
        response.headers["Retry-After"] = retry_after
        return response
    if op.error is not None:
        return error_response(409, op.error_code, op.error)
    if op.result is not None:
        return Response(json.dumps(op.result), status=200, mimetype="application/json")
    return Response(status=204 if op.action.value == "delete" else 200)
