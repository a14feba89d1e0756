"""``snaplab nsg``: a VM's network security group, through the lab's Microsoft.Network.

A thin client of the ARM twin with the unmodified ``azure-mgmt-network``
(:mod:`lab.nsg_api`): the same calls a script makes on Azure, so everything here can be
done with the SDK or ``az network nsg rule`` instead. It lists the rules of the VM's NSG
(its own and Azure's defaults), adds a rule that denies or allows the VM's outbound
traffic to the ``Storage`` service tag, and removes a rule by name; each change returns
once the host firewall holds it. Bad input (unknown lab, VM or rule, a taken priority,
anything ARM refuses) is a :class:`lab.errors.BadInput`, which the top-level group
prints as one ``Error:`` line with exit code 2.
"""

from __future__ import annotations

import json

import click
from azure.mgmt.network.models import SecurityRule

from lab import nsg_api
from lab.provision import engines
from lab.provision import lab as labs

LAB_HELP = "Lab name (default: the only lab)."
PRIORITY = click.IntRange(100, 4096)  # Azure's range for an NSG's own rules


def _nsg(lab_name: str | None, vm: str) -> tuple[str, nsg_api.VmNsg]:
    client = engines.connect_for_lab(lab_name)
    lab = labs.resolve_lab(client, lab_name)
    network, group = nsg_api.connect(client, lab)
    return lab, nsg_api.find(network, group, vm)


@click.group()
def nsg() -> None:
    """A VM's network security group (Microsoft.Network): outbound rules enforced on the
    host, outside the guest; inbound rules recorded."""


def _row(rule: SecurityRule) -> dict[str, object]:
    props = rule.properties
    return {
        "name": rule.name,
        "priority": props.priority if props else None,
        "direction": nsg_api.word(props.direction) if props else None,
        "access": nsg_api.word(props.access) if props else None,
        "protocol": nsg_api.word(props.protocol) if props else None,
        "source": nsg_api.source(rule),
        "destination": nsg_api.destination(rule),
        "destination_port": nsg_api.destination_ports(rule),
    }


@nsg.command("list")
@click.argument("vm")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_rules(vm: str, lab_name: str | None, as_json: bool) -> None:
    """List the rules of VM's NSG, lowest priority number (evaluated first) first,
    then Azure's default rules."""
    lab, where = _nsg(lab_name, vm)
    own = [_row(r) for r in nsg_api.rules(where)]
    defaults = [_row(r) for r in nsg_api.default_rules(where)]
    defaults.sort(key=lambda r: (str(r["direction"]), int(str(r["priority"]))))
    if as_json:
        payload = {"lab": lab, "vm": vm, "nsg": where.nsg, "rules": own, "default_rules": defaults}
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"{vm}: network security group {where.nsg}")
    click.echo(_line(_HEADER))
    for row in own:
        click.echo(_line([str(row[k]) for k in _COLUMNS]))
    if not own:
        click.echo("  (no rules of its own: Azure's default rules below decide)")
    for row in defaults:
        click.echo(_line([str(row[k]) for k in _COLUMNS]))


_COLUMNS = (
    "priority",
    "name",
    "direction",
    "access",
    "protocol",
    "source",
    "destination",
    "destination_port",
)
_HEADER = ["Priority", "Name", "Direction", "Access", "Protocol", "Source", "Destination", "Port"]
_WIDTHS = (9, 30, 10, 7, 9, 15, 15, 0)


def _line(cells: list[str]) -> str:
    return " ".join(c.ljust(w) for c, w in zip(cells, _WIDTHS, strict=True)).rstrip()


def _add(vm: str, lab_name: str | None, name: str, rule: SecurityRule) -> None:
    _, where = _nsg(lab_name, vm)
    done = nsg_api.put(where, name, rule)
    click.echo(f"{vm}: NSG {where.nsg} now has rule {nsg_api.describe(done)}")


@nsg.command("deny-storage")
@click.argument("vm")
@click.option("--name", default="DenyStorageOutbound", show_default=True, help="Rule name.")
@click.option("--priority", type=PRIORITY, default=200, show_default=True)
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
def deny_storage(vm: str, name: str, priority: int, lab_name: str | None) -> None:
    """Deny VM's outbound traffic to Azure Storage (service tag Storage)."""
    _add(vm, lab_name, name, nsg_api.storage_rule("Deny", priority))


@nsg.command("allow-storage")
@click.argument("vm")
@click.option("--name", default="AllowStorageOutbound", show_default=True, help="Rule name.")
@click.option("--priority", type=PRIORITY, default=100, show_default=True)
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
def allow_storage(vm: str, name: str, priority: int, lab_name: str | None) -> None:
    """Allow VM's outbound traffic to Azure Storage; wins over deny rules with a higher
    number."""
    _add(vm, lab_name, name, nsg_api.storage_rule("Allow", priority))


@nsg.command("remove")
@click.argument("vm")
@click.argument("name")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
def remove(vm: str, name: str, lab_name: str | None) -> None:
    """Remove the rule NAME from VM's NSG."""
    _, where = _nsg(lab_name, vm)
    rule = nsg_api.delete(where, name)
    click.echo(f"{vm}: removed rule {nsg_api.describe(rule)} from NSG {where.nsg}")
