"""Request and response helpers shared by the guest-facing apps (WireServer, HostGAPlugin).

Both answer in Azure's XML error format and both must bound what a guest can make them
buffer: a body over the limit raises :class:`BodyTooLarge`, which each app turns into a
413 rather than a 5xx (the agent retries 5xx answers, and a fault the lab did not inject
must never look like a platform failure).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from lab.platform import documents


class BodyTooLarge(Exception):
    """A request body over the endpoint's limit."""


def query_arg(request: Request, name: str) -> str | None:
    """A query parameter, matched case-insensitively (the agent is not consistent)."""
    wanted = name.lower()
    for key, value in request.args.items(multi=True):
        if key.lower() == wanted:
            return str(value)
    return None


def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without buffering it all."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body of {request.content_length} bytes exceeds {limit}")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(f"body exceeds {limit} bytes")
    return bytes(data)


def xml_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, content_type="text/xml; charset=utf-8")


def xml_error(status: int, code: str, message: str) -> Response:
    return xml_response(documents.error_xml(code, message), status)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def method_not_allowed(allowed: Iterable[str]) -> Response:
    allowed = list(allowed)
    response = xml_error(405, "UnsupportedHttpVerb", "method not allowed here")
    response.headers["Allow"] = ", ".join(allowed)
    return response
