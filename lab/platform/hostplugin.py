"""The HostGAPlugin emulator (port 32526 of the fabric).

Every agent from 2.2.31 on uploads its VM status here first, and bookworm's 2.7.3 on
Python 3.11 cannot even finish protocol detection unless ``/vmSettings`` answers with a
clean 404 (anything else sends it into a broken exception formatter). So this app must
always be up and must answer the four basic calls exactly: ``/versions`` listing
2015-09-01, ``/health`` 200, ``/vmSettings`` 404, ``PUT /status`` 200.

``/extensionArtifact`` is a proxy in Azure; here it only ever serves the fabric's own
artifact store, so no request from a guest can make the lab reach outside itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from werkzeug.wrappers import Request, Response

from lab.platform import documents
from lab.platform.guest_state import CHANNEL_HOSTPLUGIN, Fabric, GuestState
from lab.platform.http_util import (
    BodyTooLarge,
    json_response,
    method_not_allowed,
    read_body,
    xml_error,
)
from lab.platform.page_blob import parse_range
from lab.platform.roster import WIRESERVER_PORT
from lab.platform.status_report import StatusFormatError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

# A base64 envelope is 4/3 of the status it carries, plus the JSON around it.
MAX_ENVELOPE_BYTES = 24 * 1024 * 1024
MAX_LOG_BYTES = 64 * 1024 * 1024


class EnvelopeError(ValueError):
    """A ``PUT /status`` body that is not a usable HostGAPlugin envelope."""


def decode_envelope(body: bytes) -> tuple[str, dict[str, str], bytes | None]:
    """(requestUri, blob headers (lower-cased names), content or None) of an envelope.

    The agent sends ``{"requestUri", "headers": [{"headerName", "headerValue"}],
    "content": base64}``; the page-blob create envelope has no ``content``.
    """
    try:
        envelope = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise EnvelopeError(f"envelope is not JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise EnvelopeError("envelope must be a JSON object")
    uri = envelope.get("requestUri")
    if not isinstance(uri, str) or not uri:
        raise EnvelopeError("envelope has no requestUri")
    headers: dict[str, str] = {}
    raw_headers = envelope.get("headers", [])
    if not isinstance(raw_headers, list):
        raise EnvelopeError("envelope headers must be a list")
    for item in raw_headers:
        if not isinstance(item, dict) or not isinstance(item.get("headerName"), str):
            raise EnvelopeError("envelope header entries need a headerName")
        headers[item["headerName"].lower()] = str(item.get("headerValue", ""))
    content_text = envelope.get("content")
    if content_text is None:
        return uri, headers, None
    if not isinstance(content_text, str):
        raise EnvelopeError("envelope content must be a base64 string")
    try:
        content = base64.b64decode(content_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EnvelopeError(f"envelope content is not base64: {exc}") from exc
    return uri, headers, content


def _is_page_write(request_uri: str) -> bool:
    query = request_uri.partition("?")[2]
    return any(k.lower() == "comp" and v.lower() == "page" for k, v in parse_qsl(query))


def apply_status_envelope(guest: GuestState, body: bytes) -> None:
    """Record what one ``PUT /status`` envelope carries (BlockBlob or a PageBlob step)."""
    uri, headers, content = decode_envelope(body)
    if _is_page_write(uri):
        if content is None:
            raise EnvelopeError("page write without content")
        start, end = parse_range(headers.get("x-ms-range"))
        # The agent pads the page buffer beyond the range; the range is what counts.
        if len(content) < end - start:
            raise EnvelopeError("page content shorter than its x-ms-range")
        guest.write_page(CHANNEL_HOSTPLUGIN, start, content[: end - start])
        return
    blob_type = headers.get("x-ms-blob-type", "").lower()
    if blob_type == "pageblob":
        size_text = headers.get("x-ms-blob-content-length", "")
        if not size_text.isdigit():
            raise EnvelopeError("page blob create without x-ms-blob-content-length")
        guest.start_page_blob(CHANNEL_HOSTPLUGIN, int(size_text))
        return
    if content is None:
        raise EnvelopeError("block blob envelope without content")
    guest.record_status(content, CHANNEL_HOSTPLUGIN)


class HostPluginApp:
    """WSGI app for port 32526. Construct with the lab's shared :class:`Fabric`."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except BodyTooLarge as exc:
            response = xml_error(413, "RequestBodyTooLarge", str(exc))
        except Exception:
            log.exception("hostplugin: unhandled error for %s %s", request.method, request.path)
            response = xml_error(500, "InternalError", "internal error in the lab hostplugin")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        guest = self.fabric.guest_for_ip(request.remote_addr)
        if guest is None:
            return xml_error(
                403, "Forbidden", f"source address {request.remote_addr} is not a VM of this lab"
            )
        path = request.path.rstrip("/").lower() or "/"
        routes: dict[str, tuple[str, Callable[[Request, GuestState], Response]]] = {
            "/versions": ("GET", self._versions),
            "/health": ("GET", self._health),
            "/vmsettings": ("GET", self._vm_settings),
            "/status": ("PUT", self._status),
            "/extensionartifact": ("GET", self._extension_artifact),
            "/vmagentlog": ("PUT", self._vm_agent_log),
        }
        route = routes.get(path)
        if route is None:
            return xml_error(404, "ResourceNotFound", f"no such resource: {request.path}")
        method, handler = route
        allowed = (method, "HEAD") if method == "GET" else (method,)
        if request.method not in allowed:
            return method_not_allowed([method])
        return handler(request, guest)

    def _versions(self, request: Request, guest: GuestState) -> Response:
        return json_response([documents.HOSTPLUGIN_API_VERSION])

    def _health(self, request: Request, guest: GuestState) -> Response:
        return Response(b"", status=200)

    def _vm_settings(self, request: Request, guest: GuestState) -> Response:
        # Fast Track is not emulated: a clean 404 makes every agent version fall back
        # to ExtensionsConfig (2.7.3 then stops asking for 6 hours).
        return xml_error(404, "ResourceNotFound", "vmSettings is not supported by this host")

    def _status(self, request: Request, guest: GuestState) -> Response:
        body = read_body(request, MAX_ENVELOPE_BYTES)
        try:
            apply_status_envelope(guest, body)
        except StatusFormatError as exc:
            return xml_error(400, "InvalidStatus", str(exc))
        except EnvelopeError as exc:
            return xml_error(400, "InvalidRequest", str(exc))
        return Response(b"", status=200)

    def _extension_artifact(self, request: Request, guest: GuestState) -> Response:
        location = request.headers.get("x-ms-artifact-location")
        if not location:
            return xml_error(400, "MissingRequiredHeader", "x-ms-artifact-location is required")
        try:
            parts = urlsplit(location)
            port = parts.port
        except ValueError:
            return xml_error(400, "InvalidHeaderValue", "bad x-ms-artifact-location")
        on_fabric = (
            parts.scheme == "http"
            and parts.hostname == self.fabric.roster.fabric_ip
            and port in (None, WIRESERVER_PORT)
        )
        artifact = self.fabric.artifacts.get(parts.path) if on_fabric else None
        if artifact is None:
            # Never fetched from outside the lab: whatever is not ours does not exist.
            return xml_error(404, "ResourceNotFound", "artifact not available in this lab")
        return Response(artifact.data, status=200, content_type=artifact.content_type)

    def _vm_agent_log(self, request: Request, guest: GuestState) -> Response:
        read_body(request, MAX_LOG_BYTES)
        return Response(b"", status=200)
