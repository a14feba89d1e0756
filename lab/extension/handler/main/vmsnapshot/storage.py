"""Blob storage calls over plain HTTP(S): disk size, blob snapshot, block-blob upload.

Every request goes through one ``urllib`` opener whose ``ProxyHandler`` is built from the
agent's configuration only — environment proxies are never consulted, as the real
extension reads its proxy from ``/etc/waagent.conf`` alone. Failures are split in two:
:class:`NoNetwork` (nothing answered: refused, timed out, unreachable, unresolvable) and
:class:`StorageRefused` (storage answered with an error status).

The timeout applies to each socket operation, as the real extension's
``HTTPSConnection(timeout=10)`` does; the worker passes the lab's value of
:data:`durations.STORAGE_CALL_TIMEOUT` (10 Azure seconds on the task's clock).
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from email.utils import formatdate

from . import durations

API_VERSION = "2019-02-02"
# Azure's own value (time scale 1), for callers that do not run on a lab clock.
CONNECT_TIMEOUT = durations.STORAGE_CALL_TIMEOUT.azure_seconds


class StorageFailure(Exception):
    """A storage call did not succeed."""


class NoNetwork(StorageFailure):
    """Nothing answered the call (connection refused/timed out, unreachable, DNS)."""


class StorageRefused(StorageFailure):
    """Storage answered with an error status."""

    def __init__(self, status: int, error_code: str, body: str) -> None:
        super().__init__(f"HTTP {status} {error_code}".strip())
        self.status = status
        self.error_code = error_code
        self.body = body


def without_sas(url: str) -> str:
    """The blob URI without its SAS query (what may be logged and reported)."""
    return url.split("?", 1)[0]


def with_query(url: str, extra: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{extra}"


class StorageClient:
    def __init__(self, proxy: str | None = None, timeout: float = CONNECT_TIMEOUT) -> None:
        proxies = {"http": proxy, "https": proxy} if proxy else {}
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        self.proxy = proxy
        self.timeout = timeout

    def blob_size(self, sas_url: str) -> int:
        """The blob's length in bytes (``HEAD``: Content-Length)."""
        headers = self._call("HEAD", sas_url)
        for name in ("x-ms-blob-content-length", "Content-Length"):
            value = headers.get(name)
            if value is not None and value.isdigit():
                return int(value)
        raise StorageRefused(200, "NoContentLength", "HEAD answered without a length")

    def snapshot(self, sas_url: str) -> str:
        """``PUT <blob>?comp=snapshot``; returns the ``x-ms-snapshot`` timestamp."""
        headers = self._call("PUT", with_query(sas_url, "comp=snapshot"), b"")
        snapshot = headers.get("x-ms-snapshot")
        if not snapshot:
            raise StorageRefused(201, "NoSnapshotHeader", "snapshot answered without x-ms-snapshot")
        return snapshot

    def put_block_blob(self, sas_url: str, body: bytes, content_type: str) -> None:
        self._call(
            "PUT",
            sas_url,
            body,
            {"x-ms-blob-type": "BlockBlob", "Content-Type": content_type},
        )

    def _call(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> http.client.HTTPMessage:
        headers = {"x-ms-version": API_VERSION, "x-ms-date": formatdate(usegmt=True)}
        headers.update(extra or {})
        if body is not None:
            headers["Content-Length"] = str(len(body))
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                return response.headers  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            text = _read_error_body(exc)
            code = exc.headers.get("x-ms-error-code", "") if exc.headers else ""
            raise StorageRefused(exc.code, code, text) from exc
        except urllib.error.URLError as exc:
            raise NoNetwork(_describe(exc.reason)) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise NoNetwork(_describe(exc)) from exc


def _read_error_body(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read().decode("utf-8", "replace")[:2000]
    except (OSError, http.client.HTTPException):
        return ""


def _describe(reason: object) -> str:
    if isinstance(reason, socket.gaierror):
        return f"name resolution failed: {reason}"
    if isinstance(reason, TimeoutError):
        return f"timed out: {reason}"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection refused: {reason}"
    return str(reason)
