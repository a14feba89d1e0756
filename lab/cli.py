"""The ``snaplab`` command line: parses, calls, prints. No logic lives here.

This is the one place where :class:`lab.errors.SnaplabError` becomes a one-line
message and an exit code; tracebacks only appear with ``--debug``.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
import docker
from rich.console import Console

from lab import signals
from lab.azcli import install as az_install
from lab.cli_backup import COMMANDS as BACKUP_COMMANDS
from lab.cli_bundle import collect_logs
from lab.cli_case import case
from lab.cli_diagnose import diagnose
from lab.cli_drill import drill
from lab.cli_nsg import nsg
from lab.cli_run import inject, run
from lab.cli_scenario import scenario
from lab.cli_ssh import ssh
from lab.drill import browser
from lab.errors import EngineUnavailable, SnaplabError
from lab.extension.protocol import HANDLER_NAME
from lab.provision import engine, engines, images
from lab.provision import lab as labs
from lab.provision.fabric_client import FabricClient
from lab.provision.guest_variants import GUEST_VARIANTS
from lab.provision.spec import DEFAULT_LAB, lab_spec
from lab.runner import env_exports, provision_scenario
from lab.scenario import load_scenario

# No log_path: progress lines are for people, a `file.py:NN` column is not.
console = Console(stderr=True, log_path=False)


class SnaplabGroup(click.Group):
    """Translates snaplab errors (and Ctrl-C) at the boundary."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SnaplabError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt as exc:
            # Ctrl-C, SIGTERM or SIGHUP (lab.signals): what was up has been removed.
            _fail(f"interrupted ({signals.describe()})", signals.exit_code(exc))


def _fail(message: str, code: int) -> NoReturn:
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str], None]]:
    with console.status(title) as status:

        def report(step: str) -> None:
            console.log(step)
            status.update(step)

        yield report


@click.group(cls=SnaplabGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """snaplab: Azure-like Linux guests, the real agent, and the snapshot timeout."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@cli.command()
@click.option(
    "--az",
    "with_az",
    is_flag=True,
    help=f"Also install the Azure CLI ({az_install.PACKAGE} {az_install.PINNED_VERSION}, "
    "about 730 MB) in its own venv, for `az` against labs.",
)
@click.option(
    "--browser",
    "with_browser",
    is_flag=True,
    help=f"Also install Debian's {browser.PACKAGE} (headless), which the drill debrief's "
    "test renders the report in.",
)
def setup(with_az: bool, with_browser: bool) -> None:
    """Install and start a Docker engine if needed, and build every lab image."""
    with _progress("setting up") as report:
        client = engine.ensure_engine(report)
        engine.raise_inotify_limit()
        recipes = images.all_recipes()
        for recipe in recipes:
            report(f"{recipe.name}: {images.ensure_image(client, recipe, report)}")
        # Every engine labs were placed on holds copies of the images.
        answering = engines.answering(client, lambda _, exc: report(f"not pruned: {exc}"))
        pruned = sum(images.prune_stale_images(c, recipes) for _, c in answering)
        az = az_install.ensure_installed(report) if with_az else None
        chromium = browser.ensure_installed(report) if with_browser else None
    click.echo(f"snaplab is set up ({pruned} outdated image(s) removed)")
    if chromium is not None:
        click.echo(f"{browser.PACKAGE}: {chromium}")
    if az is not None:
        click.echo(f"az: {az.az} (`snaplab env` puts it on PATH, logged in to the lab)")


@cli.command()
@click.option("--lab", "lab_name", default=DEFAULT_LAB, show_default=True, help="Lab name.")
@click.option(
    "--vm",
    "vms",
    multiple=True,
    metavar="NAME[:agent=VERSION,guest=VARIANT]",
    help=f"A guest VM (repeatable; agents: {', '.join(images.AGENT_FLAVORS)}; "
    f"guest variants: {', '.join(GUEST_VARIANTS)}).",
)
@click.option(
    "--scenario",
    "scenario_id",
    default=None,
    metavar="ID",
    help="Provision a scenario and inject its fault, then leave the lab to you.",
)
def up(lab_name: str, vms: tuple[str, ...], scenario_id: str | None) -> None:
    """Bring up a lab and wait until every guest agent is Ready.

    With --scenario the lab is the scenario's, broken the way it describes (a drill:
    the cause is not printed); work in it, then `snaplab down`.
    """
    if scenario_id is not None:
        if vms:
            raise click.UsageError("give --scenario or --vm, not both")
        scenario = load_scenario(scenario_id)
        lab_spec(lab_name, ())  # validates the lab name before Docker is touched
        with _progress(f"bringing up lab {lab_name}") as report:
            client = engine.ensure_engine(report)
            engine.raise_inotify_limit()
            provision_scenario(client, scenario, lab_name, report)
        _print_status(labs.status(client, lab_name))
        return
    spec = lab_spec(lab_name, vms)
    with _progress(f"bringing up lab {spec.name}") as report:
        client = engine.ensure_engine(report)
        engine.raise_inotify_limit()
        labs.up(client, spec, report)
    _print_status(labs.status(client, spec.name))


@cli.command()
@click.argument("lab_name", metavar="[LAB]", required=False)
@click.option("--vm", "vm_names", multiple=True, metavar="NAME", help="Only these VMs.")
@click.option(
    "--wait-ready",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="First wait up to SECONDS until the agents are Ready (exit 1 if not).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(
    lab_name: str | None, vm_names: tuple[str, ...], wait_ready: float | None, as_json: bool
) -> None:
    """Show a lab's VMs, their agents and extensions."""
    client = engines.connect_for_lab(lab_name)
    lab = labs.resolve_lab(client, lab_name)
    result = labs.status(client, lab, vm_names)
    if wait_ready is not None:
        labs.wait_ready(client, lab, vm_names, wait_ready)
        result = labs.status(client, lab, vm_names)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_status(result)


@cli.command()
@click.argument("lab_name", metavar="[LAB]", required=False)
@click.option("--all", "everything", is_flag=True, help="Remove every snaplab lab.")
@click.option(
    "--missing-ok",
    is_flag=True,
    help="With LAB: succeed when no such lab exists (for tools that own the name, Terraform).",
)
def down(lab_name: str | None, everything: bool, missing_ok: bool) -> None:
    """Remove a lab (or, with --all, everything any lab left behind)."""
    if everything and lab_name:
        raise click.UsageError("give a LAB or --all, not both")
    if missing_ok and not lab_name:
        raise click.UsageError("--missing-ok needs a LAB")
    client = engines.connect_for_lab(lab_name)
    if everything:
        click.echo(f"removed {_sweep_engines(client)} object(s) of every lab")
        return
    # --missing-ok: removal by label anyway, which finds nothing when the lab is gone.
    target = lab_name if missing_ok else labs.resolve_lab(client, lab_name)
    removed = labs.down(client, target)
    click.echo(f"removed {removed} object(s) of {target}")


def _sweep_engines(default: docker.DockerClient) -> int:
    """Every lab object on the usual engine and on every other engine labs were placed on
    (one that does not answer now is named, and remembered for the next sweep)."""
    unreachable: list[engines.Engine] = []

    def skipped(placed: engines.Engine, exc: EngineUnavailable) -> None:
        click.echo(f"skipped: {exc}", err=True)
        unreachable.append(placed)

    # Listed before the first removal: the usual engine's sweep clears the state folder.
    answering = list(engines.answering(default, skipped))
    removed = sum(labs.down(client, None) for _, client in answering)
    engines.remember(unreachable)
    return removed


@cli.command()
@click.argument("lab_name", metavar="[LAB]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the exports as one JSON object.")
def env(lab_name: str | None, as_json: bool) -> None:
    """Print shell exports that point the Azure SDK (and az, once installed) at the lab."""
    client = engines.connect_for_lab(lab_name)
    arm = labs.arm_endpoint(client, labs.resolve_lab(client, lab_name))
    exports = env_exports(arm)
    if as_json:
        click.echo(json.dumps(exports, indent=2))
        return
    for key, value in exports.items():
        click.echo(f"export {key}={shlex.quote(value)}")


@cli.group()
def extension() -> None:
    """The VMSnapshot extension versions the platform offers."""


@extension.command("versions")
@click.option("--lab", "lab_name", default=None, help="Lab name (default: the only lab).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def extension_versions(lab_name: str | None, as_json: bool) -> None:
    """List the versions in the extension's manifest and whether each package is whole."""
    client = engines.connect_for_lab(lab_name)
    roster = labs.roster_of(client, labs.resolve_lab(client, lab_name))
    versions = FabricClient(roster.fabric_ip).extension_versions(HANDLER_NAME)
    if as_json:
        click.echo(json.dumps({"handler": HANDLER_NAME, "versions": versions}, indent=2))
        return
    for item in versions:
        click.echo(
            f"{HANDLER_NAME} {item['version']:<10} package {item['package']:<8} {item['url']}"
        )


@extension.command("withdraw")
@click.argument("version")
@click.option("--lab", "lab_name", default=None, help="Lab name (default: the only lab).")
def extension_withdraw(version: str, lab_name: str | None) -> None:
    """Stop offering VERSION, as Microsoft's rollback of a damaged release does (the
    platform does it itself when a support case names the version)."""
    client = engines.connect_for_lab(lab_name)
    roster = labs.roster_of(client, labs.resolve_lab(client, lab_name))
    gone = FabricClient(roster.fabric_ip).withdraw_version(HANDLER_NAME, version)
    click.echo(f"withdrew {HANDLER_NAME} {gone['version']} ({gone['package']} package)")


def _print_status(result: dict[str, Any]) -> None:
    click.echo(f"lab {result['lab']}")
    for vm in result["vms"]:
        agent = vm["agent"]
        extensions = ", ".join(f"{e['name']} {e.get('status')}" for e in vm["extensions"]) or "none"
        click.echo(
            f"  {vm['name']:<12} {vm['power_state']:<9} agent {agent['version'] or '?':<9} "
            f"{agent['status']:<10} last report {agent['last_report'] or 'never'}  "
            f"extensions: {extensions}"
        )


for command in (run, inject, diagnose, drill, nsg, scenario, ssh, collect_logs, *BACKUP_COMMANDS):
    cli.add_command(command)
cli.add_command(case)


def main() -> None:
    signals.install()
    try:
        cli(obj={})
    finally:
        signals.cancel_watchdog()
