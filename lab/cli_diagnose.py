"""``snaplab diagnose VM [--lab NAME] [--json]`` and ``snaplab diagnose --bundle FILE
[--json]``: parses, calls, prints.

Registered on the main group in :mod:`lab.cli` (``cli.add_command(diagnose)``), whose
error handling turns an unknown lab or VM, or a bad bundle, into a one-line ``Error:``
and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lab.bundle.diagnose import BundleDiagnosis, diagnose_bundle_file
from lab.diagnosis import Diagnosis
from lab.diagnosis import diagnose as run_diagnosis
from lab.errors import BadInput
from lab.provision import engines
from lab.provision import lab as labs


@click.command()
@click.argument("vm", required=False)
@click.option("--lab", "lab_name", default=None, help="Lab name (default: the only lab).")
@click.option(
    "--bundle",
    "bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Diagnose the agent's log bundle (waagent -collect-logs' logs.zip) instead of a lab VM.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON.")
def diagnose(vm: str | None, lab_name: str | None, bundle: Path | None, as_json: bool) -> None:
    """Run the checks for VM (or over a log bundle) and name the cause(s), their
    evidence and runbook."""
    if bundle is not None:
        if vm is not None or lab_name is not None:
            raise BadInput("diagnose: give either VM (with --lab) or --bundle, not both")
        found = diagnose_bundle_file(bundle)
        click.echo(json.dumps(found.to_json(), indent=2) if as_json else render_bundle(found))
        return
    if vm is None:
        raise BadInput("diagnose: name a VM, or give --bundle BUNDLE.zip")
    client = engines.connect_for_lab(lab_name)
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


def render_bundle(result: BundleDiagnosis) -> str:
    """Causes (evidence lines, runbook), causes the bundle cannot decide, the checks run
    from its files, the checks it could not run, and the agent's non-benign errors."""
    lines = []
    if result.causes:
        lines.append(f"{result.bundle}: {len(result.causes)} cause(s) found")
        for cause in result.causes:
            lines.append(f"  {cause.id}  (runbook: {cause.runbook})")
            lines.extend(f"    - {item}" for item in cause.evidence)
    else:
        lines.append(f"{result.bundle}: no cause found in the bundle's files")
    if result.undecided:
        lines.append("undecided from a bundle (needs checks it cannot run):")
        for item in result.undecided:
            lines.append(f"  {item.cause}  needs {', '.join(item.needs)}")
            lines.extend(f"    - {seen}" for seen in item.seen)
    lines.append("checks run from the bundle's files:")
    width = max((len(check.id) for check in result.checks), default=0)
    for check in result.checks:
        mark = "pass" if check.passed else ("FAIL" if check.observed else "----")
        lines.append(f"  {mark}  {check.id:<{width}}  {check.detail}")
    lines.append("checks that cannot run from a bundle:")
    width = max((len(check) for check, _ in result.cannot_run), default=0)
    lines.extend(f"  {check:<{width}}  {why}" for check, why in result.cannot_run)
    if result.log_errors:
        lines.append("the agent's errors and warnings (benign noise left out):")
        lines.extend(f"  {line}" for line in result.log_errors[-20:])
    return "\n".join(lines)
