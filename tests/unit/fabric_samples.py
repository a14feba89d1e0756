"""Shared test data for the fabric unit tests: a two-guest roster, a controllable clock,
and VM status documents shaped like the ones DEB 2.7.3 uploads (wireserver.md §6.4)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.dom import minidom

from lab.platform.guest_state import Fabric
from lab.platform.roster import GuestEntry, Roster

FABRIC_IP = "10.199.0.2"
VM1_IP = "10.199.0.11"
VM2_IP = "10.199.0.12"
STRANGER_IP = "10.199.0.99"
STATUS_URL = f"http://{FABRIC_IP}/machine/statusblob/vm1?sr=b&sp=rw&se=9999-01-01&sig=x"


# --- the agent's XML reading rules (WA textutil): recursive, case-sensitive tag lookup;
# the text of an element is its first TEXT child node, so CDATA reads as None.


def agent_findall(root: minidom.Node | None, tag: str) -> list[minidom.Element]:
    if root is None:
        return []
    return list(root.getElementsByTagName(tag))  # type: ignore[attr-defined]


def agent_find(root: minidom.Node | None, tag: str) -> minidom.Element | None:
    found = agent_findall(root, tag)
    return found[0] if found else None


def agent_text(node: minidom.Node | None) -> str | None:
    if node is None:
        return None
    for child in node.childNodes:
        if child.nodeType == child.TEXT_NODE:
            return str(child.data)
    return None


def agent_getattr(node: minidom.Element | None, name: str) -> str | None:
    if node is None:
        return None
    return node.getAttribute(name)


def make_roster() -> Roster:
    return Roster(
        lab="unit",
        subnet="10.199.0.0/24",
        fabric_ip=FABRIC_IP,
        storage_ip="10.199.0.3",
        guests=(
            GuestEntry("vm1", VM1_IP, "02:42:0a:c7:00:0b", "2.7.3.0", "snaplab-unit-vm1"),
            GuestEntry("vm2", VM2_IP, "02:42:0a:c7:00:0c", "2.2.47", "snaplab-unit-vm2"),
        ),
    )


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = datetime(2026, 11, 27, 21, 56, 23, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def make_fabric(stale_after: float = 20.0) -> tuple[Fabric, FakeClock]:
    clock = FakeClock()
    return Fabric(make_roster(), clock=clock, stale_after_seconds=stale_after), clock


def vm_status(
    *,
    agent_status: str = "Ready",
    ext_status: str = "success",
    seq: int = 0,
    with_handler: bool = True,
) -> dict[str, Any]:
    handler = {
        "handlerVersion": "1.0.0",
        "handlerName": "Lab.Test.HelloExt",
        "status": "Ready",
        "code": 0,
        "useExactVersion": True,
        "formattedMessage": {"lang": "en-US", "message": "Plugin enabled"},
        "runtimeSettingsStatus": {
            "settingsStatus": {
                "status": {
                    "name": "Lab.Test.HelloExt",
                    "configurationAppliedTime": None,
                    "operation": "Enable",
                    "status": ext_status,
                    "code": 0,
                    "formattedMessage": {"lang": "en-US", "message": "enabled by lab"},
                },
                "version": 1.0,
                "timestampUTC": "2026-11-27T21:56:20Z",
            },
            "sequenceNumber": seq,
        },
    }
    return {
        "version": "1.1",
        "timestampUTC": "2026-11-27T21:56:23Z",
        "aggregateStatus": {
            "guestAgentStatus": {
                "version": "2.7.3.0",
                "status": agent_status,
                "formattedMessage": {"lang": "en-US", "message": "Guest Agent is running"},
            },
            "handlerAggregateStatus": [handler] if with_handler else [],
            "vmArtifactsAggregateStatus": {
                "goalStateAggregateStatus": {
                    "formattedMessage": {
                        "lang": "en-US",
                        "message": "GoalState executed successfully",
                    },
                    "timestampUTC": "2026-11-27T21:56:23Z",
                    "inSvdSeqNo": "1",
                    "status": "Success",
                    "code": 0,
                }
            },
        },
        "guestOSInfo": {
            "computerName": "vm1",
            "osName": "debian",
            "osVersion": "12",
            "version": "2.7.3.0",
        },
        "supportedFeatures": [{"Key": "MultipleExtensionsPerHandler", "Value": "1.0"}],
    }


def status_bytes(**kwargs: Any) -> bytes:
    return json.dumps(vm_status(**kwargs)).encode()


def block_envelope(content: bytes, uri: str = STATUS_URL) -> bytes:
    """A HostGAPlugin PUT /status body as the agent builds it for a BlockBlob."""
    headers = {
        "Content-Length": str(len(content)),
        "x-ms-blob-type": "BlockBlob",
        "x-ms-date": "2026-11-27T21:56:23Z",
        "x-ms-version": "2014-02-14",
    }
    return json.dumps(
        {
            "requestUri": uri,
            "headers": [{"headerName": k, "headerValue": v} for k, v in headers.items()],
            "content": base64.b64encode(content).decode(),
        },
        sort_keys=True,
    ).encode()


def page_envelopes(
    content: bytes, page: int = 4 * 1024 * 1024, uri: str = STATUS_URL
) -> list[bytes]:
    """The HostGAPlugin PageBlob sequence: create (no content), then comp=page chunks
    padded with spaces to 512 and each page buffer padded with NULs past its range."""
    size = (len(content) + 511) // 512 * 512
    padded = content.ljust(size, b" ")
    create_headers = {
        "Content-Length": "0",
        "x-ms-blob-content-length": str(size),
        "x-ms-blob-type": "PageBlob",
        "x-ms-date": "2026-11-27T21:56:23Z",
        "x-ms-version": "2014-02-14",
    }
    out = [
        json.dumps(
            {
                "requestUri": uri,
                "headers": [{"headerName": k, "headerValue": v} for k, v in create_headers.items()],
            }
        ).encode()
    ]
    page_uri = uri + ("&comp=page" if "?" in uri else "?comp=page")
    start = 0
    while start < len(padded):
        end = start + min(len(padded) - start, page)
        buf = bytearray((end - start + 511) // 512 * 512)
        buf[: end - start] = padded[start:end]
        headers = {
            "Content-Length": str(end - start),
            "x-ms-date": "2026-11-27T21:56:23Z",
            "x-ms-range": f"bytes={start}-{end - 1}",
            "x-ms-page-write": "update",
            "x-ms-version": "2014-02-14",
        }
        out.append(
            json.dumps(
                {
                    "requestUri": page_uri,
                    "headers": [{"headerName": k, "headerValue": v} for k, v in headers.items()],
                    "content": base64.b64encode(bytes(buf)).decode(),
                }
            ).encode()
        )
        start = end
    return out
