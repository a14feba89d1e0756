"""``snaplab ssh VM [--lab NAME] [-- COMMAND...]``: into a lab VM as into an Azure VM.

Thin, like :mod:`lab.cli`: it finds the VM's address and the lab's SSH files, then
replaces itself with the system OpenSSH client (``ssh azureuser@<address>``), so the
terminal, signals and exit code are ssh's own: without COMMAND an interactive login,
with it the command's exit code. ``sudo`` works without a password, as on Azure.
"""

from __future__ import annotations

import os
import sys

import click

from lab.provision import engines
from lab.provision import lab as labs
from lab.provision.ssh_client import ensure_client, target_for


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("vm")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- COMMAND...]")
@click.option(
    "--lab",
    "lab_name",
    default=None,
    envvar="SNAPLAB_LAB",
    help="Lab name (default: $SNAPLAB_LAB, which runbook steps have, else the only lab).",
)
def ssh(vm: str, command: tuple[str, ...], lab_name: str | None) -> None:
    """Log in to VM as its admin over SSH, or run COMMAND there (its exit code)."""
    client = engines.connect_for_lab(lab_name)
    roster = labs.roster_of(client, labs.resolve_lab(client, lab_name))
    target = target_for(roster, vm)
    argv = target.argv(command, ssh=ensure_client())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
