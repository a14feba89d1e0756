"""Agent version numbers: parsing and Azure's supported minimum."""

from __future__ import annotations

import re

# Azure's minimum supported Linux agent since July 2022 (2.2.41 before that).
MINIMUM_AGENT = "2.2.53.1"

_VERSION = re.compile(r"^\d+(\.\d+)*$")


def parse(version: str) -> tuple[int, ...] | None:
    """``"2.7.3.0"`` -> ``(2, 7, 3, 0)``; None for anything that is not dotted digits."""
    version = version.strip()
    if not _VERSION.match(version):
        return None
    return tuple(int(part) for part in version.split("."))


def at_least(version: str, minimum: str = MINIMUM_AGENT) -> bool:
    """True when ``version`` >= ``minimum`` (missing trailing parts count as 0)."""
    have, want = parse(version), parse(minimum)
    if have is None or want is None:
        return False
    width = max(len(have), len(want))
    return have + (0,) * (width - len(have)) >= want + (0,) * (width - len(want))
