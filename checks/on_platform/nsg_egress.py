"""NSG rules between the VM and storage (Microsoft's cause 1: the VM has no access to
storage because an NSG or firewall blocks it). Read on the platform, because a guest's
root can neither see nor lift them."""

from __future__ import annotations

from checks.context import STORAGE_PORT, CheckContext
from checks.nsg import first_match
from checks.result import CheckResult


def nsg_egress(ctx: CheckContext) -> CheckResult:
    """The first NSG rule matching VM -> storage (tcp/10000) does not deny it."""
    check = "platform.nsg_egress"
    rules = ctx.platform.nsg_rules()
    source, destination = ctx.guest.ip, ctx.roster.storage_ip
    flow = f"{ctx.vm} {source} -> storage {destination}:{STORAGE_PORT}/tcp"
    rule = first_match(rules, source, destination, "tcp", STORAGE_PORT)
    if rule is None:
        return CheckResult.ok(check, f"{flow}: no NSG rule matches ({len(rules)} rule(s) in all)")
    if rule.allow:
        return CheckResult.ok(check, f"{flow}: allowed by {rule.describe()}")
    return CheckResult.fail(check, f"{flow}: denied by {rule.describe()}")
