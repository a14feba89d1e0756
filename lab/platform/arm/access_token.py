"""The access tokens the lab's managed identity hands out: JWTs, as Azure's are.

Azure's tools read the token they are given, not only send it back: ``az login
--identity`` decodes it (without checking the signature) for the tenant (``tid``) whose
subscriptions it then lists, and a user's script may print its claims. So the identity
endpoint answers with a JWT carrying the claims of an Azure managed-identity token
(``aud``, ``iss``, ``iat``/``nbf``/``exp``, ``appid``, ``idtyp`` app, ``oid``/``sub``,
``tid``, ``ver`` 1.0), and the twin accepts it as a bearer token until it expires.

Where it differs: Azure signs with RS256 and publishes the keys; the lab signs with
HS256 keyed by the lab's own bearer token (which the twin also accepts as is), so only
whoever holds the lab's token can mint one, and the twin needs no key store.

Runs inside the twin's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

_HEADER = {"alg": "HS256", "typ": "JWT"}
_OBJECT_ID_NAMESPACE = uuid.UUID("5f1c2a9e-7d43-5b0e-9c1a-6c6162696420")


class TokenRejected(Exception):
    """A presented token that is not a valid lab JWT; ``code`` is ARM's 401 code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Identity:
    """Who a token is for: the lab's tenant and its managed identity's ids."""

    tenant_id: str
    client_id: str

    @property
    def object_id(self) -> str:
        return str(uuid.uuid5(_OBJECT_ID_NAMESPACE, self.client_id))


def issue(key: bytes, identity: Identity, resource: str, now: int, lifetime: int) -> str:
    """A JWT for ``resource`` valid from ``now`` for ``lifetime`` seconds, signed with ``key``."""
    claims = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{identity.tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": identity.client_id,
        "appidacr": "2",
        "idp": f"https://sts.windows.net/{identity.tenant_id}/",
        "idtyp": "app",
        "oid": identity.object_id,
        "sub": identity.object_id,
        "tid": identity.tenant_id,
        "ver": "1.0",
    }
    signing_input = f"{_encode(_HEADER)}.{_encode(claims)}"
    return f"{signing_input}.{_b64(_sign(key, signing_input))}"


def verify(token: str, key: bytes, now: int) -> dict[str, object]:
    """The claims of ``token`` if ``key`` signed it and it is current; raises otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.")
    signing_input = f"{parts[0]}.{parts[1]}"
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, binascii.Error) as exc:
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise TokenRejected(
            "InvalidAuthenticationToken", "The access token has an unsupported signing algorithm."
        )
    if not hmac.compare_digest(signature, _sign(key, signing_input)):
        raise TokenRejected(
            "InvalidAuthenticationTokenSignature", "The access token has an invalid signature."
        )
    if not isinstance(claims, dict):
        raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.")
    expiry = claims.get("exp")
    if not isinstance(expiry, int) or expiry <= now:
        raise TokenRejected(
            "ExpiredAuthenticationToken",
            f"The access token expiry UTC time '{_utc(expiry)}' is earlier than current "
            f"UTC time '{_utc(now)}'.",
        )
    return claims


def _sign(key: bytes, signing_input: str) -> bytes:
    return hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()


def _encode(part: Mapping[str, object]) -> str:
    return _b64(json.dumps(part, separators=(",", ":"), sort_keys=True).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _utc(epoch: object) -> str:
    if not isinstance(epoch, int):
        return "unknown"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%m/%d/%Y %H:%M:%S")
