"""The WireServer emulator (port 80 of the fabric): goal state, health, status sink, IMDS.

This is the endpoint the real agent finds through DHCP option 245. It answers only
guests on the roster, identified by source address as Azure does; anything else gets
403. Routing is a small explicit dispatcher rather than a Werkzeug ``Map`` because the
agent mixes ``/machine/?comp=...`` and ``/machine?comp=...`` and the protocol keys on
query parameters, which a path router cannot express; it also keeps us independent of
router differences between Werkzeug 2.2 (Debian bookworm, in the fabric image) and 3.x.

The same app answers IMDS (``/metadata/...``): the fabric puts 169.254.169.254 on its
loopback and DHCP option 121 routes guests there, so IMDS requests arrive on port 80
with the guest's own source address.

Malformed input is always a 4xx: the agent retries 5xx answers, and a fault the lab did
not inject must never look like a platform failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from lab.platform import documents
from lab.platform.certificates import TransportCertError
from lab.platform.guest_state import CHANNEL_DIRECT, Fabric, GuestState
from lab.platform.health_report import parse_health
from lab.platform.http_util import (
    BodyTooLarge,
    json_response,
    method_not_allowed,
    query_arg,
    read_body,
    xml_error,
    xml_response,
)
from lab.platform.page_blob import parse_range
from lab.platform.status_report import StatusFormatError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

MAX_STATUS_BYTES = 16 * 1024 * 1024
MAX_SMALL_BODY_BYTES = 4 * 1024 * 1024

# The headers the agent sends with a Certificates request (wireserver.md §3.1).
TRANSPORT_CERT_HEADER = "x-ms-guest-agent-public-x509-cert"
CIPHER_HEADER = "x-ms-cipher-name"


class WireServerApp:
    """WSGI app for port 80. Construct with the lab's shared :class:`Fabric`."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except BodyTooLarge as exc:
            response = xml_error(413, "RequestBodyTooLarge", str(exc))
        except Exception:  # a bug of ours; keep serving the other guests
            log.exception("wireserver: unhandled error for %s %s", request.method, request.path)
            response = xml_error(500, "InternalError", "internal error in the lab wireserver")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        guest = self.fabric.guest_for_ip(request.remote_addr)
        if guest is None:
            return xml_error(
                403, "Forbidden", f"source address {request.remote_addr} is not a VM of this lab"
            )
        segments = [s for s in request.path.split("/") if s]
        head = segments[0].lower() if segments else ""
        if not segments:
            return self._root(request)
        if head == "machine" and len(segments) == 1:
            return self._machine(request, guest)
        if head == "machine" and len(segments) == 3 and segments[1] == "statusblob":
            return self._status_blob(request, guest, segments[2])
        if head == "machine" and len(segments) == 3:
            return self._config(request, guest, segments[1], segments[2])
        if head == "healthservice" and len(segments) == 1:
            if request.method != "POST":
                return method_not_allowed(["POST"])
            read_body(request, MAX_SMALL_BODY_BYTES)
            return Response(b"", status=200)
        if head == "metadata":
            return self._imds(request, guest, segments[1:])
        if head == "artifacts":
            return self._artifact(request)
        return xml_error(404, "ResourceNotFound", f"no such resource: {request.path}")

    # ------------------------------------------------------------------ W1

    def _root(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(["GET"])
        if (query_arg(request, "comp") or "").lower() != "versions":
            return xml_error(400, "InvalidQueryParameterValue", "expected comp=versions")
        return xml_response(documents.versions_xml())

    # ------------------------------------------------------------------ /machine

    def _machine(self, request: Request, guest: GuestState) -> Response:
        comp = (query_arg(request, "comp") or "").lower()
        if request.method in ("GET", "HEAD"):
            if comp != "goalstate":
                return xml_error(400, "InvalidQueryParameterValue", "expected comp=goalstate")
            return self._goal_state(guest)
        if request.method != "POST":
            return method_not_allowed(["GET", "POST"])
        if comp == "health":
            return self._health(request, guest)
        if comp == "telemetrydata":
            read_body(request, MAX_SMALL_BODY_BYTES)
            return Response(b"", status=200)
        if comp == "roleproperties":
            read_body(request, MAX_SMALL_BODY_BYTES)
            return Response(b"", status=202)
        return xml_error(400, "InvalidQueryParameterValue", f"unsupported comp={comp!r}")

    def _goal_state(self, guest: GuestState) -> Response:
        snapshot = guest.goal_state()
        ident = snapshot.identity
        return xml_response(
            documents.goal_state_xml(
                incarnation=snapshot.incarnation,
                container_id=ident.container_id,
                instance_id=ident.instance_id,
                config_name=ident.config_name,
                urls=self.fabric.goal_state_urls(snapshot),
            )
        )

    def _health(self, request: Request, guest: GuestState) -> Response:
        try:
            state, incarnation, substatus, description = parse_health(
                read_body(request, MAX_SMALL_BODY_BYTES)
            )
        except ValueError as exc:
            return xml_error(400, "InvalidXmlDocument", str(exc))
        guest.record_health(
            state, incarnation=incarnation, substatus=substatus, description=description
        )
        return Response(b"", status=200)

    # ------------------------------------------------------------------ W3/W4/W5/W6

    def _config(
        self, request: Request, guest: GuestState, container_id: str, instance_id: str
    ) -> Response:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(["GET"])
        snapshot = guest.goal_state()
        ident = snapshot.identity
        if container_id != ident.container_id or instance_id != ident.instance_id:
            return xml_error(404, "ResourceNotFound", "no such container or role instance")
        if (query_arg(request, "comp") or "").lower() == "certificates":
            return self._certificates(request, guest, snapshot.incarnation)
        kind = (query_arg(request, "type") or "").lower()
        service = self.fabric.roster.lab
        if kind == "hostingenvironmentconfig":
            body = documents.hosting_environment_xml(
                incarnation=snapshot.incarnation,
                deployment_id=ident.deployment_id,
                role_name=ident.role_name,
                service=service,
            )
        elif kind == "sharedconfig":
            body = documents.shared_config_xml(
                incarnation=snapshot.incarnation,
                deployment_id=ident.deployment_id,
                role_name=ident.role_name,
                service=service,
                ip=ident.ip,
            )
        elif kind == "extensionsconfig":
            body = documents.extensions_config_xml(
                incarnation=snapshot.incarnation,
                handlers=snapshot.handlers,
                status_upload_blob=self.fabric.status_blob_url(guest),
                metadata=snapshot.metadata,
                ga_family_manifests=self.fabric.ga_family_manifests,
                encryptor=self.fabric.tenant_certificate(guest),
            )
        else:
            return xml_error(404, "ResourceNotFound", f"unknown config type {kind!r}")
        return xml_response(body)

    def _certificates(self, request: Request, guest: GuestState, incarnation: str) -> Response:
        """W5: the VM's tenant certificate, encrypted to the transport certificate the
        agent sends in its headers (and with the cipher it names).

        A missing or unusable header (or an unknown cipher) is the caller's fault: 400,
        never a 5xx the agent would take for a platform failure and retry.
        """
        certificate = self.fabric.tenant_certificate(guest)
        try:
            body = certificate.certificates_document(
                request.headers.get(TRANSPORT_CERT_HEADER) or "",
                cipher=request.headers.get(CIPHER_HEADER),
                incarnation=incarnation,
            )
        except TransportCertError as exc:
            return xml_error(400, "InvalidHeaderValue", str(exc))
        return xml_response(body)

    # ------------------------------------------------------------------ status blob

    def _status_blob(self, request: Request, caller: GuestState, blob_name: str) -> Response:
        """A direct PUT to the StatusUploadBlob URL, answered as Azure storage would.

        The blob name selects the VM (a SAS URL is a capability, not an identity); the
        caller must still be a lab VM, which :meth:`dispatch` has checked.
        """
        guest = self.fabric.guest(blob_name)
        if guest is None:
            return xml_error(404, "BlobNotFound", f"no status blob {blob_name!r}")
        if request.method in ("GET", "HEAD"):
            latest = guest.latest_status()
            if latest is None:
                return xml_error(404, "BlobNotFound", "the VM has not uploaded a status yet")
            return Response(latest.raw, status=200, content_type="application/json")
        if request.method != "PUT":
            return method_not_allowed(["GET", "PUT"])
        body = read_body(request, MAX_STATUS_BYTES)
        try:
            if (query_arg(request, "comp") or "").lower() == "page":
                start, end = parse_range(request.headers.get("x-ms-range"))
                if len(body) < end - start:
                    raise StatusFormatError("page body shorter than its x-ms-range")
                guest.write_page(CHANNEL_DIRECT, start, body[: end - start])
                return Response(b"", status=201)
            blob_type = (request.headers.get("x-ms-blob-type") or "").lower()
            if blob_type == "blockblob":
                guest.record_status(body, CHANNEL_DIRECT)
            elif blob_type == "pageblob":
                size_text = request.headers.get("x-ms-blob-content-length") or ""
                if not size_text.isdigit():
                    raise StatusFormatError("page blob create without x-ms-blob-content-length")
                guest.start_page_blob(CHANNEL_DIRECT, int(size_text))
            else:
                return xml_error(400, "MissingRequiredHeader", "x-ms-blob-type is required")
        except StatusFormatError as exc:
            return xml_error(400, "InvalidInput", str(exc))
        return Response(b"", status=201)

    # ------------------------------------------------------------------ IMDS

    def _imds(self, request: Request, guest: GuestState, path: list[str]) -> Response:
        if request.method not in ("GET", "HEAD"):
            return json_response({"error": "Method not allowed"}, 405)
        if (request.headers.get("Metadata") or "").lower() != "true":
            return json_response(
                {"error": "Bad request. Required metadata header not specified"}, 400
            )
        if not path or path[0] != "instance":
            return json_response({"error": "Not found"}, 404)
        node: Any = documents.imds_instance(self.fabric.roster, guest.entry, guest.identity.vm_id)
        for part in path[1:]:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return json_response({"error": "Not found"}, 404)
        if (query_arg(request, "format") or "").lower() == "text" and not isinstance(
            node, dict | list
        ):
            return Response(str(node), status=200, content_type="text/plain; charset=utf-8")
        return json_response(node)

    # ------------------------------------------------------------------ artifacts

    def _artifact(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(["GET"])
        artifact = self.fabric.artifacts.get(request.path)
        if artifact is None:
            return xml_error(404, "BlobNotFound", f"no artifact at {request.path}")
        return Response(artifact.data, status=200, content_type=artifact.content_type)
