"""``snaplab collect-logs VM [--lab NAME] [-o FILE] [--full]``: parses, calls, prints.

Registered on the main group in :mod:`lab.cli`; its error handling turns an unknown lab
or VM into one ``Error:`` line and exit code 2. The work is :mod:`lab.bundle.collect`.
"""

from __future__ import annotations

from pathlib import Path

import click

from lab.bundle.collect import collect_logs as collect
from lab.errors import BadInput
from lab.provision import engine
from lab.provision import lab as labs


@click.command("collect-logs")
@click.argument("vm")
@click.option(
    "--lab",
    "lab_name",
    default=None,
    envvar="SNAPLAB_LAB",
    help="Lab name (default: $SNAPLAB_LAB, else the only lab).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the bundle (default: ./<VM>-logs.zip).",
)
@click.option("--full", is_flag=True, help="The agent's full mode (-collect-logs -full).")
def collect_logs(vm: str, lab_name: str | None, output: Path | None, full: bool) -> None:
    """Collect the agent's log bundle (waagent -collect-logs) of VM to this machine."""
    target = output if output is not None else Path(f"{vm}-logs.zip")
    if target.parent != Path() and not target.parent.is_dir():
        raise BadInput(f"-o {target}: folder {target.parent} does not exist")
    client = engine.connect()
    result = collect(client, labs.resolve_lab(client, lab_name), vm, full)
    try:
        target.write_bytes(result.data)
    except OSError as exc:
        raise BadInput(f"-o {target}: cannot write ({exc.strerror})") from exc
    click.echo(
        f"{vm} (agent {result.agent_version}): {target} ({len(result.data)} bytes, "
        f"{result.seconds:.1f} s), {result.describe()}"
    )
