"""``snaplab nsg``: a VM's network security group, as ``az network nsg rule`` shows it.

Thin, like :mod:`lab.cli`: it resolves the lab and VM, calls :mod:`lab.provision.nsg` and
prints. Only what the lab's scenarios and runbooks need: list a VM's rules, add a rule that
denies or allows its traffic to storage, remove a rule by name. Bad input (unknown lab, VM
or rule, a taken name or priority) is a :class:`lab.errors.BadInput`, which the top-level
group prints as one ``Error:`` line with exit code 2.
"""

from __future__ import annotations

import json

import click

from lab.platform.roster import Roster
from lab.provision import backups, engine
from lab.provision import lab as labs
from lab.provision import nsg as nsgs

LAB_HELP = "Lab name (default: the only lab)."
PRIORITY = click.IntRange(*nsgs.PRIORITY_RANGE)


def _roster(lab_name: str | None, vm: str) -> Roster:
    client = engine.connect()
    roster = labs.roster_of(client, labs.resolve_lab(client, lab_name))
    backups.check_vm(roster, vm)
    return roster


@click.group()
def nsg() -> None:
    """A VM's network security group: outbound rules enforced outside the guest."""


@nsg.command("list")
@click.argument("vm")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_rules(vm: str, lab_name: str | None, as_json: bool) -> None:
    """List VM's NSG rules, lowest priority number (evaluated first) first."""
    roster = _roster(lab_name, vm)
    rules = nsgs.list_rules(roster, vm)
    if as_json:
        payload = {"lab": roster.lab, "vm": vm, "rules": [r.as_json() for r in rules]}
        click.echo(json.dumps(payload, indent=2))
        return
    if not rules:
        click.echo(f"{vm}: no NSG rules (its outbound traffic is allowed)")
        return
    click.echo(f"{'Priority':<9} {'Name':<32} {'Access':<7} {'Protocol':<9} Destination")
    for rule in rules:
        port = "" if rule.destination_port == "*" else f":{rule.destination_port}"
        where = rule.destination + port
        if rule.destination == nsgs.STORAGE_TAG:
            where += f" ({roster.storage_ip})"
        click.echo(
            f"{rule.priority:<9} {rule.name:<32} {rule.access:<7} {rule.protocol:<9} {where}"
        )


def _add(vm: str, lab_name: str | None, rule: nsgs.NsgRule) -> None:
    roster = _roster(lab_name, vm)
    nsgs.add_rule(roster, vm, rule)
    click.echo(f"{vm}: added NSG rule {rule.describe()}")


@nsg.command("deny-storage")
@click.argument("vm")
@click.option("--name", default="DenyStorageOutbound", show_default=True, help="Rule name.")
@click.option("--priority", type=PRIORITY, default=200, show_default=True)
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
def deny_storage(vm: str, name: str, priority: int, lab_name: str | None) -> None:
    """Deny VM's outbound traffic to storage (service tag Storage, TCP 10000)."""
    _add(vm, lab_name, nsgs.storage_rule(name, priority, "Deny"))


@nsg.command("allow-storage")
@click.argument("vm")
@click.option("--name", default="AllowStorageOutbound", show_default=True, help="Rule name.")
@click.option("--priority", type=PRIORITY, default=100, show_default=True)
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
def allow_storage(vm: str, name: str, priority: int, lab_name: str | None) -> None:
    """Allow VM's outbound traffic to storage; wins over deny rules with a higher number."""
    _add(vm, lab_name, nsgs.storage_rule(name, priority, "Allow"))


@nsg.command("remove")
@click.argument("vm")
@click.argument("name")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
def remove(vm: str, name: str, lab_name: str | None) -> None:
    """Remove VM's NSG rule NAME."""
    roster = _roster(lab_name, vm)
    rule = nsgs.remove_rule(roster, vm, name)
    click.echo(f"{vm}: removed NSG rule {rule.describe()}")
