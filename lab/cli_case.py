"""``snaplab case``: a customer's case as a lab (``up``), with its backup compared to the
customer's symptom (``run``), and a running lab written back as a case file (``export``).

Thin, like :mod:`lab.cli`: load, call :mod:`lab.cases`, print. Other subcommands join the
group from their own modules (``case.add_command(...)``, e.g. ``import`` from the log
bundle's CLI), so this file needs no change for them.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from lab.cases import origin
from lab.cases.build import build_case, load_buildable, require_symptom, run_case
from lab.cases.load import dump_case
from lab.cases.model import Case
from lab.provision import engine, engines
from lab.provision import lab as labs
from lab.provision.spec import lab_spec

console = Console(stderr=True, log_path=False)
CASE_PATH = click.Path(path_type=Path, dir_okay=False)


@click.group()
def case() -> None:
    """Customer cases: build a lab from a case file, run its backup, export a lab's case."""


def _report(status: Any) -> Any:
    def report(step: str) -> None:
        console.log(step)
        status.update(step)

    return report


def _notes(notes: tuple[str, ...]) -> None:
    for note in notes:
        click.echo(f"not honoured: {note}", err=True)


@case.command("up")
@click.argument("case_file", type=CASE_PATH, metavar="CASE.yaml")
@click.option("--lab", "lab_name", default=None, help="Lab name (default: the case's name).")
def case_up(case_file: Path, lab_name: str | None) -> None:
    """Build a lab with exactly what CASE.yaml describes, and leave it running."""
    found = load_buildable(case_file)
    if lab_name is not None:
        lab_spec(lab_name, ())  # a bad name is refused before Docker is touched
    with console.status(f"building case {found.name}") as status:
        client = engine.ensure_engine(_report(status))
        engine.raise_inotify_limit()
        built = build_case(client, found, lab_name, _report(status))
    _notes(built.plan.notes)
    result = labs.status(client, built.plan.lab)
    click.echo(f"lab {result['lab']} (case {found.name})")
    for vm in result["vms"]:
        agent = vm["agent"]
        click.echo(
            f"  {vm['name']:<12} {vm['power_state']:<9} agent {agent['version'] or '?':<9} "
            f"{agent['status']}"
        )


@case.command("run")
@click.argument("case_file", type=CASE_PATH, metavar="CASE.yaml")
@click.option("--lab", "lab_name", default=None, help="Lab name (default: the case's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--keep", is_flag=True, help="Leave the lab running afterwards.")
def case_run(case_file: Path, lab_name: str | None, as_json: bool, keep: bool) -> None:
    """Build CASE.yaml's lab, run a backup and compare it with the case's symptom.

    Exit 0 when the job matches the symptom, 1 when it differs.
    """
    found = load_buildable(case_file)
    require_symptom(found)
    if lab_name is not None:
        lab_spec(lab_name, ())
    with console.status(f"running case {found.name}") as status:
        client = engine.ensure_engine(_report(status))
        engine.raise_inotify_limit()
        result = run_case(client, found, lab_name, _report(status), keep)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        _notes(result.built.plan.notes)
        click.echo(f"case {found.name}: {result.comparison.summary()}")
        if keep:
            click.echo(f"lab {result.built.plan.lab} kept; remove it with `snaplab down`")
    sys.exit(0 if result.comparison.matched else 1)


@case.command("export")
@click.option("--lab", "lab_name", default=None, help="Lab name (default: the only lab).")
@click.option("-o", "--output", type=CASE_PATH, default=None, help="Write here (default: stdout).")
@click.option(
    "--redact/--no-redact",
    default=True,
    show_default=True,
    help="Replace names, addresses and secrets with stable placeholders.",
)
def case_export(lab_name: str | None, output: Path | None, redact: bool) -> None:
    """Write the case file of a running lab, as it was built."""
    client = engines.connect_for_lab(lab_name)
    lab = labs.resolve_lab(client, lab_name)
    exported = origin.exported_case(lab, labs.status(client, lab))
    if redact:
        exported = redact_case(exported)
    text = dump_case(exported)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} (lab {lab})", err=True)


def redact_case(found: Case) -> Case:
    """The redaction hook: :mod:`lab.cases.redact`'s ``redact_case`` when it is there
    (the log bundle's work), else the case unchanged (a lab's own case holds no
    customer names)."""
    try:
        module = importlib.import_module("lab.cases.redact")
    except ModuleNotFoundError:
        return found
    redactor = getattr(module, "redact_case", None)
    if redactor is None:
        return found
    redacted = redactor(found)
    # The redactor may return (case, report); the case file takes only the case.
    result = redacted[0] if isinstance(redacted, tuple) else redacted
    if not isinstance(result, Case):
        raise TypeError("lab.cases.redact.redact_case must return a Case")
    return result
