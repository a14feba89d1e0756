"""The VM status document the agent uploads, decoded and read into typed views.

The agent's status JSON is large and loosely shaped: parts appear only once a handler
has run, and older agents leave fields out. Every reader here is tolerant (a missing or
mistyped field reads as ``None``) so a sparse report degrades the instance view rather
than failing it; only an upload that is not a JSON object at all is rejected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class StatusFormatError(ValueError):
    """A status upload that is not a VM status document (or a malformed upload)."""


def parse_vm_status(raw: bytes) -> dict[str, Any]:
    """Decode a VM status document the agent uploaded.

    Page blobs arrive padded with spaces (HostGAPlugin path) or NUL bytes (direct path),
    so trailing padding is stripped before decoding. Anything but a JSON object is a
    malformed upload.
    """
    text_bytes = raw.rstrip(b"\x00 \t\r\n")
    if text_bytes.startswith(b"\xef\xbb\xbf"):
        text_bytes = text_bytes[3:]
    try:
        parsed = json.loads(text_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StatusFormatError(f"status is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise StatusFormatError("status JSON must be an object")
    return parsed


@dataclass(frozen=True)
class StatusReport:
    """One VM status document as received."""

    raw: bytes
    parsed: dict[str, Any]
    received_monotonic: float
    received_at: datetime
    channel: str


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _message(container: dict[str, Any]) -> str | None:
    return _str(_dict(container.get("formattedMessage")).get("message"))


@dataclass(frozen=True)
class AgentStatusView:
    """What the agent says of itself (``aggregateStatus.guestAgentStatus``)."""

    status: str | None
    message: str | None
    version: str | None


def agent_status_view(status: dict[str, Any]) -> AgentStatusView:
    """The agent's own status, message and version from a VM status document."""
    agent = _dict(_dict(status.get("aggregateStatus")).get("guestAgentStatus"))
    os_version = _str(_dict(status.get("guestOSInfo")).get("version"))
    return AgentStatusView(
        status=_str(agent.get("status")),
        message=_message(agent),
        version=_str(agent.get("version")) or os_version,
    )


@dataclass(frozen=True)
class ExtensionView:
    """One handler as the instance view shows it (from ``handlerAggregateStatus``)."""

    name: str | None
    version: str | None
    handler_status: str | None
    status: str | None
    code: int | None
    message: str | None
    operation: str | None
    sequence_number: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "handler_status": self.handler_status,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "operation": self.operation,
            "sequence_number": self.sequence_number,
        }


def extension_views(status: dict[str, Any]) -> tuple[ExtensionView, ...]:
    """Per-handler status from a VM status document, tolerant of missing parts (a
    handler that has not run yet has no ``runtimeSettingsStatus``)."""
    handlers = _dict(status.get("aggregateStatus")).get("handlerAggregateStatus")
    if not isinstance(handlers, list):
        return ()
    views = []
    for handler in handlers:
        if not isinstance(handler, dict) or not isinstance(handler.get("handlerName"), str):
            continue  # the agent always names a handler; a nameless entry is noise
        runtime = _dict(handler.get("runtimeSettingsStatus"))
        settings = _dict(_dict(runtime.get("settingsStatus")).get("status"))
        views.append(
            ExtensionView(
                name=_str(handler.get("handlerName")),
                version=_str(handler.get("handlerVersion")),
                handler_status=_str(handler.get("status")),
                status=_str(settings.get("status")),
                code=_int(settings.get("code")),
                message=_message(settings) if settings else _message(handler),
                operation=_str(settings.get("operation")),
                sequence_number=_int(runtime.get("sequenceNumber")),
            )
        )
    return tuple(views)


def os_view(status: dict[str, Any]) -> dict[str, str | None] | None:
    info = status.get("guestOSInfo")
    if not isinstance(info, dict):
        return None
    return {
        "computer_name": _str(info.get("computerName")),
        "name": _str(info.get("osName")),
        "version": _str(info.get("osVersion")),
    }
