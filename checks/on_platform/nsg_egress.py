"""The NSG between the VM and storage (Microsoft's cause 1: the VM has no access to
storage because an NSG or firewall blocks it). Read on the platform with
``azure-mgmt-network``, as an engineer reads the VM's *Networking* blade, because a
guest's root can neither see nor lift an NSG rule."""

from __future__ import annotations

from checks.context import STORAGE_PORT, CheckContext
from checks.nsg import Endpoint, Flow, first_match
from checks.result import CheckResult

# Azure's service tags that hold a storage account's public endpoint (the region's
# qualified tags are added per VM), and the one that holds a VM's own address.
STORAGE_ACCOUNT_TAGS = ("storage", "azurecloud", "internet")
VM_TAGS = frozenset({"virtualnetwork"})


def storage_endpoint(ctx: CheckContext) -> Endpoint:
    region = ctx.roster.location.lower()
    tags = {*STORAGE_ACCOUNT_TAGS, f"storage.{region}", f"azurecloud.{region}"}
    return Endpoint(ctx.roster.storage_ip, frozenset(tags))


def nsg_egress(ctx: CheckContext) -> CheckResult:
    """The rule of the VM's NSG that decides VM -> storage (tcp/10000) allows it."""
    check = "platform.nsg_egress"
    rules = ctx.platform.nsg_rules(ctx.vm)
    source, destination = ctx.guest.ip, ctx.roster.storage_ip
    flow = Flow(Endpoint(source, VM_TAGS), storage_endpoint(ctx), "tcp", STORAGE_PORT)
    shown = f"{ctx.vm} {source} -> storage {destination}:{STORAGE_PORT}/tcp"
    rule = first_match(rules, flow)
    if rule is None:
        return CheckResult.ok(check, f"{shown}: no NSG rule matches ({len(rules)} rule(s) in all)")
    if rule.allow:
        return CheckResult.ok(check, f"{shown}: allowed by {rule.describe()}")
    return CheckResult.fail(check, f"{shown}: denied by {rule.describe()}")
