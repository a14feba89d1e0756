"""``snaplab backup``, ``jobs``, ``restore-points`` and ``policy``: the lab's Azure Backup
vault through ``azure-mgmt-recoveryservicesbackup`` (:mod:`lab.provision.vault`).

Thin, like :mod:`lab.cli`: resolve the lab, call the vault, print. The same calls work
against a real vault; these commands are conveniences over them. Times and durations
are the vault's, on the lab's Azure clock (a 95-minute snapshot timeout shows as
``1:35:00``).
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from lab.provision import engines
from lab.provision import lab as labs
from lab.provision.vault import LabVault, policy_line, summary

LAB_HELP = "Lab name (default: the only lab)."
console = Console(stderr=True)


def _vault(lab_name: str | None) -> LabVault:
    client = engines.connect_for_lab(lab_name)
    return LabVault.of(client, labs.resolve_lab(client, lab_name))


@click.command()
@click.argument("vm")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
@click.option("--wait", is_flag=True, help="Follow the job to its end; exit 1 if it fails.")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def backup(vm: str, lab_name: str | None, wait: bool, as_json: bool) -> None:
    """Start an on-demand backup job of VM, as Azure Backup's "Backup now"."""
    vault = _vault(lab_name)
    job = vault.backup_now(vm)
    if wait:
        with console.status(f"backing up {vm}") as progress:
            job = vault.follow(job, lambda j: progress.update(f"{vm}: {summary(j)}"))
    click.echo(json.dumps(job, indent=2) if as_json else summary(job))
    if wait and job["status"] == "Failed":
        sys.exit(1)


@click.command()
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
@click.option("--vm", default=None, help="Only this VM's jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs(lab_name: str | None, vm: str | None, as_json: bool) -> None:
    """List backup jobs, newest first."""
    found = _vault(lab_name).jobs(vm)
    if as_json:
        click.echo(json.dumps({"jobs": found}, indent=2))
        return
    for job in found:
        click.echo(summary(job))


@click.command("restore-points")
@click.argument("vm")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def restore_points(vm: str, lab_name: str | None, as_json: bool) -> None:
    """List a VM's recovery points: a snapshot of each disk and its copy in the vault."""
    points = _vault(lab_name).restore_points(vm)
    if as_json:
        click.echo(json.dumps({"restore_points": points}, indent=2))
        return
    for point in points:
        click.echo(
            f"{point['id']}  {point['created_at']}  {point['consistency']}  "
            f"{point['disks']} disk(s)  tiers {', '.join(point['tiers'])}"
        )


@click.group()
def policy() -> None:
    """Backup policies: when each VM's scheduled backups start (the lab's Azure clock)."""


@policy.command("list")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def policy_list(lab_name: str | None, as_json: bool) -> None:
    """Show the Azure clock and every policy with its run time, next run and VMs."""
    view = _vault(lab_name).policies()
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    click.echo(
        f"Azure clock {view['azure_now']} (x{view['time_scale']:g}); "
        f"the lab's host model takes {view['host_snapshot_slots']} snapshots at a time"
    )
    for item in view["policies"]:
        click.echo("  " + policy_line(item))


@policy.command("set")
@click.argument("name")
@click.option(
    "--time",
    "time_spec",
    required=True,
    metavar="HH:MM|+15m|+2h",
    help="Daily run time (UTC, Azure clock), or an offset from the Azure clock now.",
)
@click.option(
    "--vm", "vms", multiple=True, metavar="VM", help="Put this VM on the policy (repeatable)."
)
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
def policy_set(name: str, time_spec: str, vms: tuple[str, ...], lab_name: str | None) -> None:
    """Create or change policy NAME, and move VMs onto it."""
    click.echo(policy_line(_vault(lab_name).set_policy(name, time_spec, vms)))


@policy.command("wait")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--lab", "lab_name", default=None, help=LAB_HELP)
@click.option("--timeout", type=float, default=None, help="Lab seconds to wait at most.")
def policy_wait(names: tuple[str, ...], lab_name: str | None, timeout: float | None) -> None:
    """Wait for each policy's next scheduled run to end; exit 1 if any job failed."""
    found = _vault(lab_name).wait_for_policy_runs(names, click.echo, timeout)
    for job in found:
        click.echo(f"{job['policy']}: " + summary(job))
    if any(job["status"] == "Failed" for job in found):
        sys.exit(1)


COMMANDS = (backup, jobs, restore_points, policy)
