"""The VM's instance view through the Azure SDK: power state, guest agent, extensions."""

from __future__ import annotations

from azure.mgmt.compute.models import InstanceViewStatus, VirtualMachineInstanceView

from checks.context import CheckContext
from checks.host import probe
from checks.result import CheckResult, one_line
from checks.versions import MINIMUM_AGENT, at_least

POWER_PREFIX = "PowerState/"


def power_code(view: VirtualMachineInstanceView) -> str:
    """``running``, ``stopped``, ``deallocated``, ... or ``unknown``."""
    for status in view.statuses or []:
        if status.code and status.code.startswith(POWER_PREFIX):
            return status.code.removeprefix(POWER_PREFIX)
    return "unknown"


def power_state(ctx: CheckContext) -> CheckResult:
    """The platform's power state against whether the guest OS actually runs.

    Azure shows a VM whose OS was shut down from inside as ``PowerState/stopped``, and
    backs it up offline. A platform that still shows ``running`` while the OS is down has
    a stale view of the VM (Microsoft's 2016 cause 4b, "status not reflected"): it keeps
    waiting for an agent that will never answer."""
    check = "platform.power_state"
    platform_power = power_code(ctx.platform.instance_view(ctx.vm))
    guest = probe(ctx.host)
    seen = f"systemd {guest.state}" if guest.answers else f"does not answer ({guest.state})"
    detail = f"instance view: PowerState/{platform_power}; guest OS: {seen}"
    if platform_power == "running" and not guest.running:
        return CheckResult.fail(
            check,
            f"{detail} — the platform shows the VM running but its OS is down "
            "(an OS that halted should show PowerState/stopped)",
        )
    if platform_power in ("stopped", "deallocated") and guest.running:
        detail += " (the platform's view lags: it shows the VM off but the OS runs)"
    return CheckResult.ok(check, detail)


def vm_agent(ctx: CheckContext) -> CheckResult:
    """Agent status (``Ready``) and version (at least Azure's minimum) in the instance view."""
    check = "platform.vm_agent"
    view = ctx.platform.instance_view(ctx.vm)
    agent = view.vm_agent
    version = (agent.vm_agent_version if agent else None) or "Unknown"
    status = _first(agent.statuses if agent else None)
    shown = f"vmAgent {status.display_status if status else 'no status'}, version {version}" + (
        f": {one_line(status.message)}" if status and status.message else ""
    )
    power = power_code(view)
    if power != "running":
        return CheckResult.ok(check, f"VM is {power}: no agent report expected ({shown})")
    ready = status is not None and status.display_status == "Ready"
    if not ready:
        return CheckResult.fail(check, shown)
    if version != "Unknown" and not at_least(version):
        return CheckResult.fail(check, f"{shown} (below the minimum {MINIMUM_AGENT})")
    return CheckResult.ok(check, shown)


def extensions(ctx: CheckContext) -> CheckResult:
    """Every extension's status, and every handler's, in the instance view."""
    check = "platform.extensions"
    view = ctx.platform.instance_view(ctx.vm)
    shown, failed = [], []
    for ext in view.extensions or []:
        status = _first(ext.statuses)
        text = (
            f"{ext.name} {ext.type_handler_version or '?'}: "
            f"{status.display_status if status else 'no status'}"
            + (f" ({status.code}: {one_line(status.message)})" if status and status.message else "")
        )
        shown.append(text)
        if status is not None and (status.level == "Error" or "failed" in (status.code or "")):
            failed.append(text)
    handlers = view.vm_agent.extension_handlers if view.vm_agent else None
    for handler in handlers or []:
        status = handler.status
        if status is not None and status.display_status != "Ready":
            failed.append(
                f"handler {handler.type} {handler.type_handler_version or '?'}: "
                f"{status.display_status} ({status.code}: {one_line(status.message or '')})"
            )
    if failed:
        return CheckResult.fail(check, "; ".join(failed))
    return CheckResult.ok(check, "; ".join(shown) or "no extensions reported")


def _first(statuses: list[InstanceViewStatus] | None) -> InstanceViewStatus | None:
    return statuses[0] if statuses else None
