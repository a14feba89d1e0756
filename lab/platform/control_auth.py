"""The control API's credential: a per-lab bearer token, checked on every request.

The control API (:mod:`lab.platform.control`) is the platform's own controller: it
changes power states, publishes and withdraws extension versions and starts backups.
On Azure no VM can reach that side of the platform, and in the lab the host firewall
keeps guests away from it (:mod:`lab.provision.network`). The token is the second
wall, so that a mistake in those rules is not enough to open it: ``snaplab up`` makes
a random one per lab, gives it to the fabric in its environment (:data:`TOKEN_ENV`;
a guest cannot read another container's environment) and keeps it in a label of the
fabric container, where the host's tools and the ARM twin find it.

Requests carry ``Authorization: Bearer <token>``, as ARM's do; the comparison is
constant-time; a refusal is a 401 with ARM's error shape, so a caller sees the same
``AuthenticationFailed`` / ``InvalidAuthenticationToken`` codes it knows from Azure.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

TOKEN_ENV = "SNAPLAB_CONTROL_TOKEN"
# Shorter tokens are refused at start: a guessable credential is no credential.
MIN_TOKEN_LENGTH = 24


class TokenError(ValueError):
    """The configured token is missing or too short to be a credential."""


def check_token(token: str | None) -> str:
    """``token`` stripped, if it is long enough to be a credential."""
    value = (token or "").strip()
    if len(value) < MIN_TOKEN_LENGTH:
        raise TokenError(
            f"{TOKEN_ENV} must hold the lab's control token "
            f"(at least {MIN_TOKEN_LENGTH} characters); the control API never runs open"
        )
    return value


def bearer(token: str) -> dict[str, str]:
    """The request header that carries ``token``."""
    return {"Authorization": f"Bearer {token}"}


class RequireToken:
    """WSGI middleware: answer 401 unless the request carries the lab's token."""

    def __init__(self, app: WSGIApplication, token: str) -> None:
        self.app = app
        self._token = check_token(token).encode()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        refusal = self._refusal(str(environ.get("HTTP_AUTHORIZATION", "")))
        if refusal is None:
            return self.app(environ, start_response)
        code, message = refusal
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("WWW-Authenticate", 'Bearer realm="snaplab-control"'),
            ],
        )
        return [body]

    def _refusal(self, header: str) -> tuple[str, str] | None:
        if not header:
            return (
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return (
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is not a bearer token.",
            )
        offered = token.strip().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(offered, self._token):
            return ("InvalidAuthenticationToken", "The access token is invalid.")
        return None
