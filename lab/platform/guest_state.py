"""What the platform knows about each guest, shared by every fabric endpoint.

The WireServer, the HostGAPlugin and the control API run in different server threads
but must agree on one truth per VM: its goal state (incarnation + handlers), the last
status the agent uploaded and the last health report. :class:`GuestState` holds that
truth behind a lock; :class:`Fabric` holds one per roster guest and finds it by the
source address of a request, which is how Azure's WireServer tells VMs apart too.

The derived :class:`GuestView` is what Azure would show in the instance view. Its agent
status turns ``Not Ready`` when the status blob stops being refreshed, exactly the
condition behind "Could not communicate with the VM agent": time is read from an
injectable :class:`Clock` so tests can age a report without sleeping.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lab.platform import documents
from lab.platform.documents import GoalStateMetadata, GoalStateUrls, HandlerSpec
from lab.platform.roster import GuestEntry, Roster
from lab.platform.timescale import AGENT_STATUS_STALE_AFTER

# Names under which statuses arrive; kept on each report for diagnosis.
CHANNEL_HOSTPLUGIN = "hostplugin"
CHANNEL_DIRECT = "direct"

# Page blobs are created with an explicit size; refuse absurd ones (the agent caps a
# status at a few MiB).
MAX_PAGE_BLOB_BYTES = 16 * 1024 * 1024

_ID_NAMESPACE = uuid.UUID("6f1c8f3e-2b7a-4d0e-9a51-5a1ab0c0ffee")


class Clock(Protocol):
    """Time as the fabric sees it: monotonic for ages, wall clock for timestamps."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class StatusFormatError(ValueError):
    """A status upload that is not a VM status document (or a malformed upload)."""


def iso_utc(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z``, second precision, as Azure's instance view prints it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class PageBlob:
    """Reassembles a page-blob upload (create PUT, then ``comp=page`` range writes).

    The agent only ever writes a status as one or a few consecutive ranges, so the blob
    is "complete" once bytes up to its declared size have been written.
    """

    def __init__(self, size: int) -> None:
        if size < 0 or size > MAX_PAGE_BLOB_BYTES:
            raise StatusFormatError(f"page blob size {size} out of range")
        self.size = size
        self._buffer = bytearray(size)
        self._high_water = 0

    def write(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if offset < 0 or end > self.size:
            raise StatusFormatError(f"page write {offset}-{end} outside blob of {self.size} bytes")
        self._buffer[offset:end] = data
        self._high_water = max(self._high_water, end)

    @property
    def complete(self) -> bool:
        return self.size > 0 and self._high_water >= self.size

    @property
    def content(self) -> bytes:
        return bytes(self._buffer)


def parse_range(header: str | None) -> tuple[int, int]:
    """``x-ms-range: bytes=<start>-<end>`` (inclusive end) -> (start, end + 1)."""
    if not header:
        raise StatusFormatError("page write without x-ms-range")
    unit, _, span = header.strip().partition("=")
    start_text, _, end_text = span.partition("-")
    try:
        start, end = int(start_text), int(end_text)
    except ValueError as exc:
        raise StatusFormatError(f"bad x-ms-range {header!r}") from exc
    if unit.strip().lower() != "bytes" or start < 0 or end < start:
        raise StatusFormatError(f"bad x-ms-range {header!r}")
    return start, end + 1


@dataclass(frozen=True)
class StatusReport:
    """One VM status document as received."""

    raw: bytes
    parsed: dict[str, Any]
    received_monotonic: float
    received_at: datetime
    channel: str


@dataclass(frozen=True)
class HealthReport:
    """The last ``comp=health`` report (sent by the daemon after provisioning)."""

    state: str
    incarnation: str | None
    substatus: str | None
    description: str | None
    received_at: datetime


@dataclass(frozen=True)
class GuestIdentity:
    """Platform-side ids of one VM, derived from (lab, name) so they survive a fabric
    restart: a changed ContainerId makes the agent treat the VM as moved."""

    name: str
    ip: str
    container_id: str
    deployment_id: str
    role_name: str
    instance_id: str
    config_name: str
    vm_id: str

    @classmethod
    def derive(cls, lab: str, guest: GuestEntry) -> GuestIdentity:
        def stable(kind: str) -> uuid.UUID:
            return uuid.uuid5(_ID_NAMESPACE, f"{lab}/{guest.name}/{kind}")

        deployment = stable("deployment").hex
        role = f"_{guest.name}"
        return cls(
            name=guest.name,
            ip=guest.ip,
            container_id=str(stable("container")),
            deployment_id=deployment,
            role_name=role,
            instance_id=f"{deployment}.{role}",
            config_name=f"{deployment}.0.{deployment}.0.{role}.1.xml",
            vm_id=str(stable("vm")),
        )


@dataclass(frozen=True)
class GoalStateSnapshot:
    """Everything needed to render one guest's goal-state documents, consistently."""

    identity: GuestIdentity
    incarnation: str
    metadata: GoalStateMetadata
    handlers: tuple[HandlerSpec, ...]


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


@dataclass(frozen=True)
class GuestView:
    """The platform's opinion of a VM, the shape the control API serves."""

    name: str
    ip: str
    incarnation: str
    agent_version: str | None
    agent_status: str
    agent_message: str
    last_report: datetime | None
    report_age_seconds: float | None
    health_state: str | None
    health_last_report: datetime | None
    os: dict[str, str | None] | None
    extensions: tuple[ExtensionView, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ip": self.ip,
            "incarnation": self.incarnation,
            "agent": {
                "version": self.agent_version,
                "status": self.agent_status,
                "message": self.agent_message,
                "last_report": iso_utc(self.last_report) if self.last_report else None,
                "report_age_seconds": (
                    round(self.report_age_seconds, 3)
                    if self.report_age_seconds is not None
                    else None
                ),
            },
            "health": {
                "state": self.health_state,
                "last_report": iso_utc(self.health_last_report)
                if self.health_last_report
                else None,
            },
            "os": self.os,
            "extensions": [e.to_json() for e in self.extensions],
        }


AGENT_READY = "Ready"
AGENT_NOT_READY = "Not Ready"


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


class GuestState:
    """Mutable, thread-safe state of one guest VM."""

    def __init__(
        self,
        lab: str,
        entry: GuestEntry,
        clock: Clock,
        stale_after: Callable[[], float],
    ) -> None:
        self.entry = entry
        self.identity = GuestIdentity.derive(lab, entry)
        self._clock = clock
        self._stale_after = stale_after
        self._lock = threading.Lock()
        self._incarnation = 1
        self._metadata = self._new_metadata()
        self._handlers: dict[str, HandlerSpec] = {}
        self._status: StatusReport | None = None
        self._health: HealthReport | None = None
        self._page_blobs: dict[str, PageBlob] = {}

    @property
    def name(self) -> str:
        return self.entry.name

    def _new_metadata(self) -> GoalStateMetadata:
        return GoalStateMetadata(
            in_svd_seq_no=str(self._incarnation),
            created_on=self._clock.now(),
            activity_id=str(uuid.uuid4()),
            correlation_id=str(uuid.uuid4()),
        )

    # ----------------------------------------------------------------- goal state

    @property
    def incarnation(self) -> str:
        with self._lock:
            return str(self._incarnation)

    def bump(self) -> str:
        """Publish a new goal state: the agent refetches everything on a new incarnation."""
        with self._lock:
            self._incarnation += 1
            self._metadata = self._new_metadata()
            return str(self._incarnation)

    def handlers(self) -> tuple[HandlerSpec, ...]:
        with self._lock:
            return tuple(self._handlers.values())

    def set_handler(self, handler: HandlerSpec, *, bump: bool = True) -> str:
        """Add or replace a handler (matched case-insensitively, as the agent does).

        Bumps the incarnation by default, because the agent only re-reads
        ExtensionsConfig when the incarnation changes. Returns the incarnation.
        """
        with self._lock:
            self._handlers[handler.name.lower()] = handler
        return self.bump() if bump else self.incarnation

    def remove_handler(self, name: str, *, bump: bool = True) -> str:
        """Drop a handler from the goal state (the agent then leaves it as it is; use
        ``state="uninstall"`` to make the agent remove it)."""
        with self._lock:
            self._handlers.pop(name.lower(), None)
        return self.bump() if bump else self.incarnation

    def goal_state(self) -> GoalStateSnapshot:
        with self._lock:
            return GoalStateSnapshot(
                identity=self.identity,
                incarnation=str(self._incarnation),
                metadata=self._metadata,
                handlers=tuple(self._handlers.values()),
            )

    # ----------------------------------------------------------------- reports

    def record_status(self, raw: bytes, channel: str) -> StatusReport:
        """Parse and keep a VM status upload; raises :class:`StatusFormatError`."""
        parsed = parse_vm_status(raw)
        report = StatusReport(
            raw=bytes(raw).rstrip(b"\x00 "),
            parsed=parsed,
            received_monotonic=self._clock.monotonic(),
            received_at=self._clock.now(),
            channel=channel,
        )
        with self._lock:
            self._status = report
        return report

    def start_page_blob(self, channel: str, size: int) -> None:
        """A page-blob create PUT: start a fresh blob for this channel."""
        blob = PageBlob(size)
        with self._lock:
            self._page_blobs[channel] = blob

    def write_page(self, channel: str, offset: int, data: bytes) -> StatusReport | None:
        """One ``comp=page`` write; records the status once the blob is complete."""
        with self._lock:
            blob = self._page_blobs.get(channel)
            if blob is None:
                raise StatusFormatError("page write before the page blob was created")
            blob.write(offset, data)
            if not blob.complete:
                return None
            content = blob.content
            del self._page_blobs[channel]
        return self.record_status(content, channel)

    def record_health(
        self,
        state: str,
        *,
        incarnation: str | None = None,
        substatus: str | None = None,
        description: str | None = None,
    ) -> HealthReport:
        report = HealthReport(
            state=state,
            incarnation=incarnation,
            substatus=substatus,
            description=description,
            received_at=self._clock.now(),
        )
        with self._lock:
            self._health = report
        return report

    def latest_status(self) -> StatusReport | None:
        with self._lock:
            return self._status

    def latest_health(self) -> HealthReport | None:
        with self._lock:
            return self._health

    # ----------------------------------------------------------------- view

    def view(self) -> GuestView:
        """The instance-view opinion of this VM right now."""
        with self._lock:
            status, health, incarnation = self._status, self._health, str(self._incarnation)
        stale_after = self._stale_after()
        if status is None:
            return GuestView(
                name=self.entry.name,
                ip=self.entry.ip,
                incarnation=incarnation,
                agent_version=None,
                agent_status=AGENT_NOT_READY,
                agent_message="VM status blob is not found: the VM agent has not reported yet.",
                last_report=None,
                report_age_seconds=None,
                health_state=health.state if health else None,
                health_last_report=health.received_at if health else None,
                os=None,
            )
        age = max(0.0, self._clock.monotonic() - status.received_monotonic)
        agent = _dict(_dict(status.parsed.get("aggregateStatus")).get("guestAgentStatus"))
        reported = _str(agent.get("status"))
        message = _message(agent) or ""
        version = _str(agent.get("version")) or _str(
            _dict(status.parsed.get("guestOSInfo")).get("version")
        )
        if age >= stale_after:
            agent_status = AGENT_NOT_READY
            message = (
                f"VM status blob is found but not updated for {age:.0f} lab seconds "
                f"(stale after {stale_after:g}). The VM agent may be stopped or cannot "
                "reach the platform."
            )
        elif reported == AGENT_READY:
            agent_status = AGENT_READY
        else:
            agent_status = AGENT_NOT_READY
            message = message or f"VM agent reported status {reported!r}"
        return GuestView(
            name=self.entry.name,
            ip=self.entry.ip,
            incarnation=incarnation,
            agent_version=version,
            agent_status=agent_status,
            agent_message=message,
            last_report=status.received_at,
            report_age_seconds=age,
            health_state=health.state if health else None,
            health_last_report=health.received_at if health else None,
            os=os_view(status.parsed),
            extensions=extension_views(status.parsed),
        )


@dataclass(frozen=True)
class Artifact:
    data: bytes
    content_type: str


class ArtifactStore:
    """Files the fabric serves under ``/artifacts/`` (extension manifests and zips).

    Guests download handler packages from here, directly or through the HostGAPlugin
    proxy; nothing is ever fetched from outside the lab. Publishing a package
    regenerates its handler's manifest so every published version is listed.
    """

    PREFIX = "/artifacts/"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._lock = threading.Lock()
        # Serialises whole publications so a manifest is never overwritten by an older
        # listing when two versions are published at once.
        self._publish_lock = threading.Lock()
        self._files: dict[str, Artifact] = {}
        self._versions: dict[str, dict[str, str]] = {}

    def url_for(self, path: str) -> str:
        return f"{self.base_url}{self.PREFIX}{path.lstrip('/')}"

    def put(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        """Store a file at ``/artifacts/<path>``; returns its URL."""
        key = path.lstrip("/")
        if not key or ".." in key.split("/"):
            raise ValueError(f"bad artifact path {path!r}")
        with self._lock:
            self._files[key] = Artifact(bytes(data), content_type)
        return self.url_for(key)

    def get(self, path: str) -> Artifact | None:
        """Look up by path below ``/artifacts/`` (with or without the prefix)."""
        key = path[len(self.PREFIX) :] if path.startswith(self.PREFIX) else path.lstrip("/")
        with self._lock:
            return self._files.get(key)

    def manifest_url(self, handler_name: str) -> str:
        return self.url_for(f"extensions/{handler_name}/manifest.xml")

    def publish_extension(self, handler_name: str, version: str, package: bytes) -> str:
        """Serve a handler zip and (re)write its manifest; returns the manifest URL."""
        with self._publish_lock:
            zip_url = self.put(
                f"extensions/{handler_name}/{handler_name}__{version}.zip",
                package,
                "application/zip",
            )
            versions = self._versions.setdefault(handler_name, {})
            versions[version] = zip_url
            listing = sorted(versions.items(), key=lambda kv: _version_key(kv[0]))
            manifest = documents.plugin_version_manifest_xml([(v, [u]) for v, u in listing])
            self.put(f"extensions/{handler_name}/manifest.xml", manifest, "text/xml")
        return self.manifest_url(handler_name)

    def publish_ga_family(self, family: str) -> str:
        """An empty GA-family manifest: agents checking for updates find none."""
        return self.put(
            f"ga/{family}_manifest.xml", documents.plugin_version_manifest_xml([]), "text/xml"
        )

    def load_directory(self, directory: Path) -> list[str]:
        """Publish every ``<Handler>__<version>.zip`` in a directory (the image ships
        the lab's handler packages there); returns the manifest URLs."""
        urls = []
        for path in sorted(directory.glob("*__*.zip")):
            handler_name, _, version = path.name[: -len(".zip")].rpartition("__")
            if handler_name and version:
                urls.append(self.publish_extension(handler_name, version, path.read_bytes()))
        return urls


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        try:
            parts.append(int(part))
        except ValueError:
            parts.append(-1)
    return tuple(parts)


GA_FAMILIES = ("Prod", "Test")


class Fabric:
    """The platform's state for one lab: the roster, one :class:`GuestState` per guest,
    and the artifact store. Every fabric endpoint is built on one shared instance."""

    def __init__(
        self,
        roster: Roster,
        *,
        clock: Clock | None = None,
        stale_after_seconds: float | None = None,
    ) -> None:
        self.roster = roster
        self.clock: Clock = clock or SystemClock()
        self.base_url = f"http://{roster.fabric_ip}"
        self.artifacts = ArtifactStore(self.base_url)
        self.ga_family_manifests = {f: self.artifacts.publish_ga_family(f) for f in GA_FAMILIES}

        def stale_after() -> float:
            # Read at each use, not once: SNAPLAB_TIME_SCALE may be set after start-up
            # in tests, and a fixed override wins.
            if stale_after_seconds is not None:
                return stale_after_seconds
            return AGENT_STATUS_STALE_AFTER.lab_seconds()

        self._guests = {
            g.name: GuestState(roster.lab, g, self.clock, stale_after) for g in roster.guests
        }
        self._by_ip = {g.ip: self._guests[g.name] for g in roster.guests}

    def guest(self, name: str) -> GuestState | None:
        return self._guests.get(name)

    def guest_for_ip(self, ip: str | None) -> GuestState | None:
        return self._by_ip.get(ip) if ip else None

    def guests(self) -> Sequence[GuestState]:
        return list(self._guests.values())

    def names(self) -> Iterable[str]:
        return self._guests.keys()

    # -------------------------------------------------------------- documents

    def status_blob_url(self, guest: GuestState) -> str:
        """The StatusUploadBlob "SAS URL": served by the fabric's own blob sink."""
        return (
            f"{self.base_url}/machine/statusblob/{guest.name}"
            "?sr=b&sp=rw&se=9999-01-01&sk=key1&sv=2014-02-14&sig=snaplab"
        )

    def goal_state_urls(self, snapshot: GoalStateSnapshot) -> GoalStateUrls:
        ident = snapshot.identity
        base = f"{self.base_url}/machine/{ident.container_id}/{ident.instance_id}"
        query = f"incarnation={snapshot.incarnation}"
        return GoalStateUrls(
            hosting_environment=f"{base}?comp=config&type=hostingEnvironmentConfig&{query}",
            shared_config=f"{base}?comp=config&type=sharedConfig&{query}",
            extensions_config=f"{base}?comp=config&type=extensionsConfig&{query}",
            full_config=f"{base}?comp=config&type=fullConfig&{query}",
        )
