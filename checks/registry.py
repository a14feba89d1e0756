"""Every check, by id, and how to run them for one VM.

In-guest checks run only when the guest OS answers (a VM that is off has no shell to
look into; ``platform.power_state`` says whether that is expected). A check that cannot
observe (an exception from the platform, a command that cannot run) is recorded as
"not observed" rather than stopping the others: one broken observation must not hide
the rest of the picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from checks.context import CheckContext, GuestFacts
from checks.host import GuestHost, probe
from checks.in_guest import agent, config, handler, load, network, scripts
from checks.on_platform import instance_view, jobs, nsg_egress
from checks.result import CheckResult

GuestObserver = Callable[[GuestHost, GuestFacts], CheckResult]
PlatformObserver = Callable[[CheckContext], CheckResult]


class Scope(StrEnum):
    GUEST = "guest"
    PLATFORM = "platform"


@dataclass(frozen=True)
class Check:
    id: str
    scope: Scope
    observes: str
    run: PlatformObserver

    def __call__(self, ctx: CheckContext) -> CheckResult:
        """Run the check; any error becomes a "not observed" result with its reason."""
        try:
            result = self.run(ctx)
        except Exception as exc:  # the boundary: report, never let one check stop the rest
            return CheckResult.unobserved(self.id, f"{type(exc).__name__}: {exc}")
        if result.id != self.id:
            raise ValueError(f"check {self.id} reported as {result.id}")
        return result


def guest(check_id: str, observe: GuestObserver, observes: str) -> Check:
    """An in-guest check: it sees the guest through ``host`` and the published facts only."""
    return Check(check_id, Scope.GUEST, observes, lambda ctx: observe(ctx.host, ctx.facts))


def platform(check_id: str, observe: PlatformObserver, observes: str) -> Check:
    return Check(check_id, Scope.PLATFORM, observes, observe)


GUEST_CHECKS: tuple[Check, ...] = (
    guest("guest.agent_version", agent.agent_version, "waagent --version vs 2.2.53.1"),
    guest("guest.agent_running", agent.agent_running, "waagent processes and the unit's state"),
    guest("guest.agent_restart_policy", agent.agent_restart_policy, "systemd Restart= (auto)"),
    guest("guest.waagent_conf", config.waagent_conf, "Extensions.Enabled, Provisioning.Agent"),
    guest("guest.agent_proxy", config.agent_proxy, "HttpProxy.* vs the guest's own proxy"),
    guest("guest.dhcp", network.dhcp, "eth0 by DHCP, DHCP client, option 245 in the lease"),
    guest("guest.wireserver", network.wireserver, "WireServerEndpoint answers ?comp=versions"),
    guest("guest.storage_reachable", network.storage_reachable, "storage on the extension's path"),
    guest("guest.handler_files", handler.handler_files, "VMSnapshot handler files intact"),
    guest("guest.extension_package", handler.extension_package, "requested version installed"),
    guest("guest.extension_status", handler.extension_status, "newest status file and code"),
    guest("guest.cpu_load", load.cpu_load, "CPU used vs the VM's quota over 1 s"),
    guest("guest.memory", load.memory_pressure, "working set vs limit, limit hits, PSI, OOM"),
    guest("guest.prepost_scripts", scripts.prepost_scripts, "pre/post scripts vs the timeout"),
)

PLATFORM_CHECKS: tuple[Check, ...] = (
    platform("platform.power_state", instance_view.power_state, "PowerState vs the guest OS"),
    platform("platform.vm_agent", instance_view.vm_agent, "agent status and version (SDK)"),
    platform("platform.extensions", instance_view.extensions, "extension statuses (SDK)"),
    platform("platform.backup_jobs", jobs.backup_jobs, "the VM's latest backup job"),
    platform("platform.concurrent_backups", jobs.concurrent_backups, "backups running at once"),
    platform("platform.nsg_egress", nsg_egress.nsg_egress, "NSG rules VM -> storage"),
)

ALL_CHECKS: tuple[Check, ...] = GUEST_CHECKS + PLATFORM_CHECKS


def check_by_id(check_id: str) -> Check:
    for check in ALL_CHECKS:
        if check.id == check_id:
            return check
    raise KeyError(check_id)


def run_checks(ctx: CheckContext) -> tuple[CheckResult, ...]:
    """Every check for the context's VM: in-guest ones when the guest answers, then the
    platform ones."""
    results: list[CheckResult] = []
    if probe(ctx.host).answers:
        results.extend(check(ctx) for check in GUEST_CHECKS)
    results.extend(check(ctx) for check in PLATFORM_CHECKS)
    return tuple(results)
