"""``snaplab diagnose VM [--lab NAME] [--json]``: parses, calls, prints.

Registered on the main group in :mod:`lab.cli` (``cli.add_command(diagnose)``), whose
error handling turns an unknown lab or VM into a one-line ``Error:`` and exit code 2.
"""

from __future__ import annotations

import json

import click

from lab.diagnosis import Diagnosis
from lab.diagnosis import diagnose as run_diagnosis
from lab.provision import engine
from lab.provision import lab as labs


@click.command()
@click.argument("vm")
@click.option("--lab", "lab_name", default=None, help="Lab name (default: the only lab).")
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON.")
def diagnose(vm: str, lab_name: str | None, as_json: bool) -> None:
    """Run the checks for VM and name the cause(s), their evidence and runbook."""
    client = engine.connect()
    roster = labs.roster_of(client, labs.resolve_lab(client, lab_name))
    result = run_diagnosis(client, roster, vm)
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else render(result))


def render(result: Diagnosis) -> str:
    """Causes first (with evidence and runbook), then every check."""
    lines = []
    if result.causes:
        lines.append(f"{result.vm}: {len(result.causes)} cause(s) found")
        for cause in result.causes:
            lines.append(f"  {cause.id}  (runbook: {cause.runbook})")
            lines.extend(f"    - {item}" for item in cause.evidence)
    else:
        lines.append(f"{result.vm}: no cause found")
    lines.append("checks:")
    width = max((len(check.id) for check in result.checks), default=0)
    for check in result.checks:
        mark = "pass" if check.passed else "FAIL"
        lines.append(f"  {mark}  {check.id:<{width}}  {check.detail}")
    return "\n".join(lines)
