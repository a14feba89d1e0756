"""The agent's own log as a bundle holds it: ``waagent.log`` and its rotations, in order,
split into records, and the benign lines the agent writes on every healthy VM.

A record starts with a timestamp and a level (``2026-12-07T11:05:34.071011Z INFO Daemon
...``; agents before 2.2.x wrote ``2019/07/15 10:20:30.123 INFO``); lines without one
continue the record above (a command's output). Rotations (``waagent.log.1``,
``waagent.log.2.gz``) are read oldest first, gzip ones within the bundle's member cap.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

from lab.bundle import reader
from lab.bundle.reader import Bundle

AGENT_LOG = "var/log/waagent.log"
_RECORD = re.compile(
    r"^(?P<when>\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?)Z?\s+"
    r"(?P<level>INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG)\b"
)
_ROTATION = re.compile(r"^var/log/waagent\.log(?:\.(\d+))?(?:\.gz)?$")


@dataclass(frozen=True)
class Record:
    """One line of evidence from a bundle: where it is and what it says."""

    path: str
    line: int
    text: str
    when: datetime | None = None
    level: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text.strip()}"


# Lines the agent (and the VMSnapshot extension) write on every healthy VM of the lab, on
# all three agent versions (2.2.47, 2.7.3.0, 2.12.0.2), measured on the lab's healthy
# bundles (tests/fixtures/bundles/healthy-*.zip). Each is a fact about the environment,
# not about a backup: no cause may rest on them. Patterns, matched anywhere in a record.
BENIGN: tuple[tuple[str, str], ...] = (
    (
        r"Command: \[dmidecode --string system-uuid\], return code: \[1\]",
        "no /dev/mem to read the SMBIOS UUID from; the agent uses the one in the goal state",
    ),
    (
        r"No route exists to 168\.63\.129\.16",
        "the agent's first probe before it reads the WireServer address from the DHCP lease",
    ),
    (
        r"(Unable to get|Error getting) cloud-init enabled status",
        "cloud-init is not installed; the agent provisions the VM itself",
    ),
    (
        r"iptables -w -t security -L OUTPUT --zero OUTPUT -nxv|Failed to get firewall packets",
        "the agent's firewall counters on an iptables without the security table's options",
    ),
    (
        r"pre/post scripts not run, file-system consistent backup: "
        r"StatusCode\.FailedPrepostPluginConfigNotFound",
        "no pre/post script configuration: the extension takes a file-system consistent "
        "snapshot, as designed",
    ),
    (
        r"Cgroup monitoring is not supported|Agent will reset the quotas",
        "the agent does not manage cgroups on this distribution",
    ),
)
_BENIGN = re.compile("|".join(f"(?:{pattern})" for pattern, _ in BENIGN))


def benign(text: str) -> bool:
    """True when a log line is noise the agent writes on every healthy VM."""
    return _BENIGN.search(text) is not None


def agent_log_members(bundle: Bundle) -> list[str]:
    """waagent.log and its rotations, oldest first (``.9`` ... ``.1``, then the live one)."""
    found = []
    for name in bundle.glob(f"{AGENT_LOG}*"):
        match = _ROTATION.match(name)
        number = int(match.group(1)) if match and match.group(1) else 0
        found.append((-number, name))
    return [name for _, name in sorted(found)]


def member_text(bundle: Bundle, name: str) -> str:
    """A member's text, gunzipped (within the member cap) when it is a ``.gz``."""
    data = bundle.read_bytes(name) or b""
    if name.endswith(".gz"):
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, reader.MEMBER_CAP)
        except zlib.error:
            return ""
    return reader.decode_text(data)


def records(bundle: Bundle, member: str) -> list[Record]:
    """A log member split into records (continuation lines joined to their record)."""
    out: list[Record] = []
    for number, line in enumerate(member_text(bundle, member).splitlines(), start=1):
        match = _RECORD.match(line)
        if match is None:
            if out and line.strip():
                last = out[-1]
                out[-1] = Record(
                    last.path, last.line, f"{last.text} {line.strip()}", last.when, last.level
                )
            continue
        out.append(Record(member, number, line, _when(match.group("when")), match.group("level")))
    return out


def agent_records(bundle: Bundle) -> list[Record]:
    """Every record of the agent's log, oldest first."""
    return [record for member in agent_log_members(bundle) for record in records(bundle, member)]


def errors(bundle: Bundle) -> list[Record]:
    """The agent's ERROR and WARNING records that are not benign noise."""
    return [
        record
        for record in agent_records(bundle)
        if record.level in ("ERROR", "WARNING", "WARN") and not benign(record.text)
    ]


def _when(text: str) -> datetime | None:
    for layout in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S.%f"):
        try:
            return datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None
