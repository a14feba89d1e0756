"""``snaplab collect-logs VM [--lab NAME] [-o FILE] [--full]`` and ``snaplab case import
BUNDLE.zip [-o case.yaml] [--redact/--no-redact]``: parse, call, print.

``collect-logs`` is registered on the main group in :mod:`lab.cli`, ``import`` joins the
``case`` group (:mod:`lab.cli_case`) from here; the main group's error handling turns bad
input (unknown lab or VM, a bundle that is not one) into one ``Error:`` line and exit 2.
The work is :mod:`lab.bundle.collect` and :mod:`lab.cases.importer`.
"""

from __future__ import annotations

from pathlib import Path

import click

from lab.bundle.collect import collect_logs as collect
from lab.cases.importer import import_bundle, slug
from lab.cases.load import dump_case
from lab.cli_case import case
from lab.errors import BadInput
from lab.provision import engines
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
    client = engines.connect_for_lab(lab_name)
    result = collect(client, labs.resolve_lab(client, lab_name), vm, full)
    try:
        target.write_bytes(result.data)
    except OSError as exc:
        raise BadInput(f"-o {target}: cannot write ({exc.strerror})") from exc
    click.echo(
        f"{vm} (agent {result.agent_version}): {target} ({len(result.data)} bytes, "
        f"{result.seconds:.1f} s), {result.describe()}"
    )


@click.command("import")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the case here (default: stdout); the redaction report goes beside it.",
)
@click.option(
    "--redact/--no-redact",
    default=True,
    show_default=True,
    help="Replace the customer's names, addresses and secrets with stable placeholders.",
)
@click.option("--name", default=None, help="The case's name (default: from the file names).")
def case_import(bundle: Path, output: Path | None, redact: bool, name: str | None) -> None:
    """Read the agent's log bundle (waagent -collect-logs zip) into a case file."""
    if name is None and output is not None:
        name = slug(output.stem)
    imported = import_bundle(bundle, redact=redact, name=name)
    text = dump_case(imported.case)
    causes = ", ".join(imported.diagnosis.cause_ids) or "none"
    report = imported.report.lines() if imported.report is not None else ["not redacted"]
    if output is None:
        click.echo(text, nl=False)
        for line in report:
            click.echo(line, err=True)
    else:
        report_path = output.with_name(output.name + ".redaction.txt")
        try:
            output.write_text(text, encoding="utf-8")
            if imported.report is not None:
                report_path.write_text("\n".join(report) + "\n", encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"-o {output}: cannot write ({exc.strerror})") from exc
        extra = f"; redaction report {report_path}" if imported.report is not None else ""
        click.echo(f"wrote {output} (causes: {causes}{extra})", err=True)


case.add_command(case_import)
