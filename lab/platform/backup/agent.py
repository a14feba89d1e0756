"""The agent seam: how a backup job talks to a VM, only through the platform.

Azure Backup never reaches into a VM. It publishes new extension settings in the goal
state (the real agent picks them up on its next poll) and reads what the agent reports
in its VM status. It also knows what the platform knows: whether it runs the VM (a
stopped VM is backed up from its disks, without the agent). :class:`AgentChannel` is
that contract; :class:`FabricAgentChannel` implements it over the fabric's
:class:`~lab.platform.guest_state.Fabric`, reading the same views the control API
shows, and unit tests use a fake.

The handler version the settings name is the newest one the platform's manifest
offers, as CRP picks for an extension that auto-upgrades minor versions
(``autoUpgradeMinorVersion``); a newer version published later is therefore what the
agent is asked to update to at the next backup.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from lab.extension.protocol import HANDLER_NAME, LATEST_VERSION, SettingsError, SnapshotResult
from lab.platform.documents import HandlerSpec
from lab.platform.guest_state import POWER_RUNNING, Fabric, GuestState
from lab.platform.instance_view import AGENT_READY
from lab.platform.status_report import extension_views
from lab.platform.timescale import BACKUP_PRECHECK_STALE_AFTER

TERMINAL_STATUSES = ("success", "error")


@dataclass(frozen=True)
class HandlerReport:
    """The VMSnapshot handler as the agent last reported it.

    ``result`` is the extension's snapshot verdict read from its substatus, when the
    status carries one; ``result_problem`` says why it could not be read.
    """

    status: str | None
    code: int | None
    message: str | None
    sequence_number: int | None
    result: SnapshotResult | None = None
    result_problem: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class AgentChannel(Protocol):
    """What a backup job may know of, and do to, a VM."""

    def agent_ready(self, vm: str) -> bool:
        """The agent reported ``Ready`` within the backup pre-check window."""
        ...

    def current_seq_no(self, vm: str) -> int | None:
        """The settings sequence number the goal state now carries for the handler."""
        ...

    def push_settings(
        self, vm: str, seq_no: int, public: Mapping[str, Any], protected: Mapping[str, Any]
    ) -> str:
        """Publish new handler settings (enabled) in the goal state; returns the
        incarnation the agent will see."""
        ...

    def handler_report(self, vm: str) -> HandlerReport | None:
        """The handler's status in the agent's latest VM status, if it reports one."""
        ...

    def power_state(self, vm: str) -> str:
        """The platform's power state of the VM (``running`` or ``stopped``)."""
        ...


def _handler_entry(status: Mapping[str, Any], handler_name: str) -> Mapping[str, Any]:
    aggregate = status.get("aggregateStatus")
    handlers = aggregate.get("handlerAggregateStatus") if isinstance(aggregate, dict) else None
    for entry in handlers if isinstance(handlers, list) else []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("handlerName")
        if isinstance(name, str) and name.lower() == handler_name.lower():
            return entry
    return {}


def read_handler_report(
    status: dict[str, Any], handler_name: str = HANDLER_NAME
) -> HandlerReport | None:
    """The handler's report from a VM status document (tolerant of sparse reports).

    Status, code, message and sequence number come from the same extension view the
    control API shows; the snapshot result from ``settingsStatus.status.substatus``.
    """
    view = next(
        (v for v in extension_views(status) if (v.name or "").lower() == handler_name.lower()),
        None,
    )
    if view is None:
        return None
    result: SnapshotResult | None = None
    problem: str | None = None
    if view.status in TERMINAL_STATUSES:
        runtime = _handler_entry(status, handler_name).get("runtimeSettingsStatus")
        settings = runtime.get("settingsStatus") if isinstance(runtime, dict) else None
        try:
            result = SnapshotResult.from_status(
                settings.get("status") if isinstance(settings, dict) else None
            )
        except SettingsError as exc:
            problem = str(exc)
    return HandlerReport(
        status=view.status,
        code=view.code,
        message=view.message,
        sequence_number=view.sequence_number,
        result=result,
        result_problem=problem,
    )


class FabricAgentChannel:
    """:class:`AgentChannel` over the fabric's shared guest state."""

    def __init__(
        self,
        fabric: Fabric,
        *,
        precheck_stale_after: Callable[[], float] = BACKUP_PRECHECK_STALE_AFTER.lab_seconds,
    ) -> None:
        self.fabric = fabric
        self._precheck_stale_after = precheck_stale_after

    def _guest(self, vm: str) -> GuestState:
        guest = self.fabric.guest(vm)
        if guest is None:
            raise KeyError(f"no VM named {vm!r}")
        return guest

    def agent_ready(self, vm: str) -> bool:
        view = self._guest(vm).view()
        age = view.report_age_seconds
        return (
            view.agent_status == AGENT_READY
            and age is not None
            and age < self._precheck_stale_after()
        )

    def current_seq_no(self, vm: str) -> int | None:
        handler = next(
            (h for h in self._guest(vm).handlers() if h.name.lower() == HANDLER_NAME.lower()),
            None,
        )
        return handler.seq_no if handler else None

    def push_settings(
        self, vm: str, seq_no: int, public: Mapping[str, Any], protected: Mapping[str, Any]
    ) -> str:
        spec = HandlerSpec(
            name=HANDLER_NAME,
            version=self.fabric.artifacts.latest_version(HANDLER_NAME) or LATEST_VERSION,
            manifest_url=self.fabric.artifacts.manifest_url(HANDLER_NAME),
            state="enabled",
            seq_no=seq_no,
            public_settings=public,
            protected_settings=protected,
        )
        return self._guest(vm).set_handler(spec)

    def handler_report(self, vm: str) -> HandlerReport | None:
        latest = self._guest(vm).latest_status()
        return read_handler_report(latest.parsed) if latest else None

    def power_state(self, vm: str) -> str:
        self._guest(vm)
        return self.fabric.power.get(vm) or POWER_RUNNING
