"""What the platform knows about each guest, shared by every fabric endpoint.

The WireServer, the HostGAPlugin and the control API run in different server threads
but must agree on one truth per VM: its goal state (incarnation + handlers), the last
status the agent uploaded and the last health report. :class:`GuestState` holds that
truth behind a lock; :class:`Fabric` holds one per roster guest and finds it by the
source address of a request, which is how Azure's WireServer tells VMs apart too.

What Azure would show of a VM in the instance view is derived from that state by
:mod:`lab.platform.instance_view`.

The fabric also keeps each VM's power state
(:class:`~lab.platform.power_states.PowerStates`): what the platform did to the VM
through ARM, and what the host saw its OS do (an OS that halted leaves the VM
``stopped``, as on Azure). Every reader of a power state reads that one record.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.platform.artifacts import ArtifactStore
from lab.platform.certificates import TenantCertificate, TenantCertificates
from lab.platform.clock import Clock, SystemClock
from lab.platform.documents import GoalStateMetadata, GoalStateUrls, HandlerSpec
from lab.platform.health_report import HealthReport
from lab.platform.identity import GuestIdentity
from lab.platform.instance_view import GuestView, guest_view
from lab.platform.page_blob import PageBlob
from lab.platform.power_states import (
    DEFAULT_POWER_FILE,
    POWER_RUNNING,
    POWER_STATES,
    POWER_STOPPED,
    PowerStates,
)
from lab.platform.roster import GuestEntry, Roster
from lab.platform.status_report import StatusFormatError, StatusReport, parse_vm_status
from lab.platform.timescale import AGENT_STATUS_STALE_AFTER

log = logging.getLogger(__name__)

# Names under which statuses arrive; kept on each report for diagnosis.
CHANNEL_HOSTPLUGIN = "hostplugin"
CHANNEL_DIRECT = "direct"


@dataclass(frozen=True)
class GoalStateSnapshot:
    """Everything needed to render one guest's goal-state documents, consistently."""

    identity: GuestIdentity
    incarnation: str
    metadata: GoalStateMetadata
    handlers: tuple[HandlerSpec, ...]


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
        return guest_view(
            self.entry,
            incarnation,
            status,
            health,
            clock=self._clock,
            stale_after=self._stale_after(),
        )


GA_FAMILIES = ("Prod", "Test")


class Fabric:
    """The platform's state for one lab: the roster, one :class:`GuestState` per guest,
    the artifact store and each guest's tenant certificate. Every fabric endpoint is
    built on one shared instance.

    ``cert_dir`` keeps the tenant certificates across fabric restarts (a VM keeps its
    thumbprint, as on Azure); without it they live in memory and are made on first use.
    ``power_file`` likewise keeps the platform power states (see :class:`PowerStates`).
    """

    def __init__(
        self,
        roster: Roster,
        *,
        clock: Clock | None = None,
        stale_after_seconds: float | None = None,
        cert_dir: Path | None = None,
        power_file: Path | None = None,
    ) -> None:
        self.roster = roster
        self.clock: Clock = clock or SystemClock()
        self.base_url = f"http://{roster.fabric_ip}"
        self.artifacts = ArtifactStore(self.base_url)
        self.certificates = TenantCertificates(cert_dir)
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
        self.power = PowerStates(self._guests, power_file)

    def guest(self, name: str) -> GuestState | None:
        return self._guests.get(name)

    def guest_for_ip(self, ip: str | None) -> GuestState | None:
        return self._by_ip.get(ip) if ip else None

    def guests(self) -> Sequence[GuestState]:
        return list(self._guests.values())

    def names(self) -> Iterable[str]:
        return self._guests.keys()

    def tenant_certificate(self, guest: GuestState) -> TenantCertificate:
        """The certificate CRP would encrypt this VM's protected settings to."""
        return self.certificates.for_guest(guest.name)

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
            certificates=f"{base}?comp=certificates&{query}",
        )


# The power-state names moved to lab.platform.power_states; importers keep these.
__all__ = [
    "DEFAULT_POWER_FILE",
    "POWER_RUNNING",
    "POWER_STATES",
    "POWER_STOPPED",
    "Fabric",
    "GoalStateSnapshot",
    "GuestState",
    "PowerStates",
]
