"""``snaplab scenario check [DIR]``: validate a catalog and lint its runbooks.

Thin, like :mod:`lab.cli`: it loads the scenarios (a malformed file is a
:class:`lab.errors.BadInput`: one line, exit 2), runs :mod:`lab.runbook_lint` over their
runbooks and prints one line per finding; exit 1 when there is any, so CI can gate on it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lab.runbook_lint import lint_scenario, runbook_source
from lab.scenario import load_scenarios, scenarios_dir


@click.group()
def scenario() -> None:
    """Scenario catalogs: validate and lint them."""


@scenario.command("check")
@click.argument(
    "directory",
    required=False,
    type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=Path),
)
def scenario_check(directory: Path | None) -> None:
    """Validate every scenario in DIRECTORY (default: the catalog) and refuse runbook
    steps that only work in the lab: 'docker', 'snaplab' commands other than ssh and env,
    the lab's own Python package, names the fault chose."""
    root = directory if directory is not None else scenarios_dir()
    scenarios = load_scenarios(directory=root)
    findings = [f for s in scenarios for f in lint_scenario(s, runbook_source(s, root))]
    for finding in findings:
        click.echo(str(finding))
    if findings:
        click.echo(f"{len(findings)} finding(s) in {len(scenarios)} scenario(s)", err=True)
        sys.exit(1)
    click.echo(f"{len(scenarios)} scenario(s) checked: every runbook step works on Azure")
