"""The guest's ``comp=health`` report: parsed from its XML, kept as the last one received.

The provisioning daemon posts a ``Health`` document to the WireServer once the VM is
provisioned; the platform keeps only the latest and shows its state in the instance view.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class HealthReport:
    """The last ``comp=health`` report (sent by the daemon after provisioning)."""

    state: str
    incarnation: str | None
    substatus: str | None
    description: str | None
    received_at: datetime


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _first_text(root: ET.Element, tag: str) -> str | None:
    for element in root.iter():
        if _local(element.tag) == tag:
            return element.text
    return None


def parse_health(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    """(state, incarnation, substatus, description) from a ``Health`` report.

    The daemon nests the role's ``Health/State`` inside the outer ``Health``; the first
    ``State`` in document order is the role's.
    """
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"health report is not XML: {exc}") from exc
    if _local(root.tag) != "Health":
        raise ValueError("health report root must be <Health>")
    state = _first_text(root, "State")
    if not state or not state.strip():
        raise ValueError("health report has no State")
    return (
        state.strip(),
        _first_text(root, "GoalStateIncarnation"),
        _first_text(root, "SubStatus"),
        _first_text(root, "Description"),
    )
