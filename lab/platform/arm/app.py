"""The ARM twin's WSGI application: what every request shares, whichever provider serves it.

It serves the lab's managed identity (:mod:`~lab.platform.arm.managed_identity`: how
``DefaultAzureCredential`` gets the token), authenticates that bearer token, routes the
URL to a resource provider (one module per provider), checks the api-version against
the resource type's list, answers every refusal with ARM's error body and stamps each
answer with ARM's request-id headers, so a user's logs and an SDK's ``x-ms-request-id``
look as they would against Azure. No input makes it answer 500 except a bug, which is
logged and answered as ARM would (``InternalServerError``).

Two seams keep it testable without a lab: :class:`~lab.platform.arm.fabric.FabricClient`
(the fabric's control API; :class:`~lab.platform.arm.fabric.HttpFabricClient` is the real
one) and :class:`~lab.platform.arm.power.PowerBackend` (Docker;
:class:`~lab.platform.arm.power.DockerPower` is the real one). Tests pass fakes of both.

Errors, all answered as ARM error bodies ``{"error": {"code", "message"}}``::

    ArmError            4xx with ARM's code (auth, api-version, not found, conflict)
    FabricError         502 BadGateway: the fabric's control API did not answer sensibly
    OperationError      not an HTTP error: the operation resource ends "Failed" with
                        Azure's code (e.g. VMExtensionProvisioningTimeout); likewise
                        the power backend's PowerError

Runs inside its own container on Debian's Python: stdlib, Werkzeug (2.2 and 3.x) and
``docker`` only, and nothing from ``lab`` outside :mod:`lab.platform`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from lab.platform.arm import metadata
from lab.platform.arm.compute import ComputeProvider
from lab.platform.arm.conventions import ArmError, authenticate, error_response
from lab.platform.arm.extensions import EXTENSION_OPERATION_TIMEOUT
from lab.platform.arm.fabric import FabricClient, FabricError
from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.platform.arm.managed_identity import token_response
from lab.platform.arm.network import FirewallFactory, NetworkProvider
from lab.platform.arm.network_store import NsgStore
from lab.platform.arm.operations import OperationStore
from lab.platform.arm.power import PowerBackend
from lab.platform.arm.provider import Call, Route
from lab.platform.arm.recovery_services import RecoveryServicesProvider
from lab.platform.arm.recovery_services_fabric import BackupFabric
from lab.platform.arm.resources import ResourcesProvider
from lab.platform.arm.support import SupportProvider
from lab.platform.arm.support_engineer import Publisher
from lab.platform.host_power import VmLocks

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_log = logging.getLogger("lab.platform.arm")


class ArmTwin:
    """The WSGI application. Every answer is JSON (or empty) and carries request ids."""

    def __init__(
        self,
        fabric: FabricClient,
        power: PowerBackend,
        token: str,
        *,
        retry_after_seconds: int = 1,
        operations: OperationStore | None = None,
        extension_timeout: Callable[[], float] = EXTENSION_OPERATION_TIMEOUT.lab_seconds,
        extension_poll_seconds: float = 1.0,
        power_locks: VmLocks | None = None,
        nsg_store: NsgStore | None = None,
        nsg_firewall: FirewallFactory | None = None,
        backup: BackupFabric | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        if not token:
            raise ValueError("the ARM twin needs a non-empty bearer token")
        self._fabric = fabric
        self._token = token.encode()
        self.operations = operations or OperationStore()
        # Shared with the host's watcher: a power operation and a halt report never overlap.
        self.power_locks = power_locks or VmLocks()
        self.compute = ComputeProvider(
            fabric,
            power,
            self.operations,
            self.power_locks,
            retry_after=str(retry_after_seconds),
            extension_timeout=extension_timeout,
            extension_poll_seconds=extension_poll_seconds,
        )
        # Microsoft.RecoveryServices, where the fabric runs a backup service.
        self.recovery_services = (
            RecoveryServicesProvider(backup, self.operations) if backup is not None else None
        )
        # Microsoft.Network: the VMs' NICs and NSGs, rules held in the host firewall.
        self.network = NetworkProvider(
            self.operations,
            retry_after=str(retry_after_seconds),
            store=nsg_store,
            firewall=nsg_firewall,
        )
        self._routes: list[Route] = [*self.compute.routes(), *self.network.routes()]
        self._routes += ResourcesProvider().routes()  # the subscription az logs in to
        if self.recovery_services is not None:
            self._routes += self.recovery_services.routes()
        # Microsoft.Support, where Microsoft's answer to a case checks the publisher's packages.
        self.support = (
            SupportProvider(publisher, self.operations) if publisher is not None else None
        )
        if self.support is not None:
            self._routes += self.support.routes()
        self._urls = _url_map(self._routes)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        started = time.monotonic()
        response = self._respond(request)
        request_id = str(uuid.uuid4())
        response.headers["x-ms-request-id"] = request_id
        response.headers["x-ms-correlation-request-id"] = (
            request.headers.get("x-ms-correlation-request-id") or request_id
        )
        client_id = request.headers.get("x-ms-client-request-id")
        if client_id:
            response.headers["x-ms-client-request-id"] = client_id
        _log.info(
            '%s "%s %s" %d %.0fms %s',
            request.remote_addr,
            request.method,
            request.full_path.rstrip("?"),
            response.status_code,
            (time.monotonic() - started) * 1000,
            request_id,
        )
        return response(environ, start_response)

    def _respond(self, request: Request) -> Response:
        try:
            if request.path == IDENTITY_PATH and request.method == "GET":
                return token_response(request, self._token, self._fabric.roster().lab)
            if metadata.serves(request):  # public, as on Azure: az cloud register reads it
                return metadata.endpoints_response(request)
            authenticate(request, self._token)
            endpoint, args = self._urls.bind_to_environ(request.environ).match()
            route = self._routes[int(endpoint)]
            roster = self._fabric.roster()
            route.resource_type.require_api_version(request, roster.location)
            return route.handler(Call(request, {k: str(v) for k, v in args.items()}, roster))
        except ArmError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except MethodNotAllowed as exc:
            response = error_response(
                405, "MethodNotAllowed", f"The method {request.method} is not allowed here."
            )
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
            return response
        except HTTPException:
            return error_response(404, "NotFound", f"No resource or action at {request.path!r}.")
        except FabricError as exc:
            _log.warning("fabric unavailable: %s", exc)
            return error_response(502, "BadGateway", f"The lab fabric did not answer: {exc}")
        except Exception:
            _log.exception("unexpected error answering %s %s", request.method, request.path)
            return error_response(500, "InternalServerError", "The ARM twin failed unexpectedly.")


def _url_map(routes: Sequence[Route]) -> Map:
    """One URL map over every provider's routes; a rule's endpoint is its route's index."""
    return Map(
        [Rule(r.path, endpoint=str(i), methods=list(r.methods)) for i, r in enumerate(routes)],
        strict_slashes=False,
        merge_slashes=False,
    )


def create_app(fabric: FabricClient, power: PowerBackend, token: str) -> ArmTwin:
    """The twin for a lab: reads ``fabric``, drives ``power``, accepts only ``token``."""
    return ArmTwin(fabric, power, token)
