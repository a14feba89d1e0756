"""The ``run`` and ``inject`` commands (``up --scenario`` is :func:`lab.runner.provision_scenario`).

Thin, like :mod:`lab.cli`: parse, call :mod:`lab.runner`, print. Scenario files are
loaded and validated before a Docker engine is touched, so a typo exits 2 at once.
Progress goes to stderr (one live line per scenario on a terminal, one line per phase
otherwise, as CI logs want); the summary goes to stdout.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lab import signals
from lab.azcli import install as az_install
from lab.cli_engines import engine_option, run_drivers
from lab.errors import BadInput
from lab.faults import fault_by_id
from lab.journal import Journal, PhaseRecord, ScenarioRecord
from lab.junit import write_junit
from lab.provision import engine, engines
from lab.runner import (
    DEFAULT_LAB_PREFIX,
    KEEP_CHOICES,
    Keep,
    RunItem,
    RunOptions,
    apply_fault,
    check_lab_prefix,
    lab_name,
    plan_run,
    run_catalog,
)

console = Console(stderr=True, log_path=False)  # no `file.py:NN` column in progress lines
MAX_PARALLEL = 8
STATUS_STYLE = {
    "passed": "green",
    "failed": "red",
    "interrupted": "yellow",
    "running": "cyan",
    "pending": "dim",
}


def clock_mark(record: ScenarioRecord) -> str:
    """`` [lab-only]`` for a scenario whose outcome does not hold on Azure's own clock."""
    return " [lab-only: not Azure's clock]" if record.azure_clock == "lab-only" else ""


class RunProgress:
    """Shows each item's current phase while the runner's threads move them on."""

    def __init__(self, out: Console, items: list[RunItem], prefix: str) -> None:
        self.out = out
        self.order = [item.id for item in items]
        self.labs = {item.id: lab_name(prefix, item.id) for item in items}
        self.records: dict[str, ScenarioRecord] = {}
        self.began: dict[str, float] = {}
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> RunProgress:
        if self.out.is_terminal:
            self.live = Live(
                get_renderable=self.table, console=self.out, refresh_per_second=4, transient=True
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def observe(self, record: ScenarioRecord, phase: PhaseRecord | None) -> None:
        with self.lock:
            self.records[record.id] = record
            self.began.setdefault(record.id, time.monotonic())
        if self.live is not None:
            return
        if phase is not None and phase.status not in ("running", "pending"):
            line = f"{record.id}: {phase.name} {phase.status} ({phase.seconds:.1f} s)"
            self._line(line + (f" {phase.error}" if phase.error else ""))
        elif phase is None and record.status in ("passed", "failed", "interrupted"):
            mark = clock_mark(record)
            self._line(f"{record.id}: {record.status} in {record.seconds:.1f} s{mark}")

    def _line(self, text: str) -> None:
        # Errors hold [ids] and paths: print them as they are, one line each.
        self.out.print(text, markup=False, highlight=False, soft_wrap=True)

    def table(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        with self.lock:
            for scenario_id in self.order:
                record = self.records.get(scenario_id)
                status = record.status if record else "pending"
                phase = (record.current_phase if record else None) or ""
                seconds = time.monotonic() - self.began[scenario_id] if record else 0.0
                if record and record.status not in ("running", "pending"):
                    seconds = record.seconds
                table.add_row(
                    Text(scenario_id),
                    Text(self.labs[scenario_id], style="dim"),
                    Text(status, style=STATUS_STYLE.get(status, "")),
                    Text(phase),
                    Text(f"{seconds:6.1f} s" if record else ""),
                )
        return table


@click.command("run")
@click.argument("scenario_ids", nargs=-1, metavar="[ID[@VARIANT]]...")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="V",
    help="Run every listed scenario (default: all) this way: catalog (the default), "
    "without-fix, scale=N, agent=VERSION, agents, guest=VARIANT or drill (repeatable).",
)
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit."
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the run's JSON journal.",
)
@click.option(
    "--keep",
    type=click.Choice(KEEP_CHOICES),
    default="never",
    show_default=True,
    help="Leave labs running: never, only those of failed scenarios, or always.",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, MAX_PARALLEL),
    default=1,
    show_default=True,
    help="Items to run at once (each in its own lab).",
)
@click.option(
    "--lab-prefix",
    default=DEFAULT_LAB_PREFIX,
    show_default=True,
    help="Labs are named <prefix>-<scenario id> (a variant's: shortened, with a hash).",
)
@engine_option
def run(
    scenario_ids: tuple[str, ...],
    variants: tuple[str, ...],
    junit_path: Path | None,
    journal_path: Path | None,
    keep: Keep,
    parallel: int,
    lab_prefix: str,
    engine_names: tuple[str, ...],
) -> None:
    """Run scenarios (default: the whole catalog) through their lifecycle, one lab each.

    Each scenario: provision, warm-up, inject, backup (must fail as expected), diagnose
    (must name exactly the expected cause), runbook, backup (must complete), verify,
    teardown. A variant runs it another way: ``without-fix`` (the runbook without its
    fix steps; the next backup must still fail), ``scale=N`` (the lab's Azure clock at
    N), ``agent=VERSION`` / ``agents`` (the scenario's agent_variants), ``guest=VARIANT``
    (every VM on a guest variant: netplan, networkmanager, waagent-unit). ``ID@VARIANT``
    adds one item, e.g. ``agent-stopped@scale=60``. Exit 0 only if every item passed.
    """
    items = plan_run(scenario_ids, variants)
    check_lab_prefix(lab_prefix)
    if az_install.needed_by(step for item in items for step in item.scenario.steps):
        az_install.ensure_installed(_log)  # platform steps type az, as on Azure
    client = engine.ensure_engine(_log)
    engine.raise_inotify_limit()
    options = RunOptions(keep=keep, parallel=parallel, lab_prefix=lab_prefix)
    drivers = run_drivers(client, engine_names, _log)
    with RunProgress(console, items, lab_prefix) as progress:
        journal = run_catalog(items, drivers, options, progress.observe)
    document = journal.to_dict()
    if journal_path is not None:
        journal.write(journal_path)
    if junit_path is not None:
        write_junit(document, junit_path)
    _print_summary(journal, journal_path, junit_path)
    if journal.status == "interrupted":
        sys.exit(signals.exit_code())
    sys.exit(0 if journal.passed else 1)


def _log(step: str) -> None:
    console.log(step, markup=False, highlight=False)


def _print_summary(journal: Journal, journal_path: Path | None, junit_path: Path | None) -> None:
    width = max([26, *(len(r.id) + 1 for r in journal.scenarios)])
    for record in journal.scenarios:
        failed = record.failed_phase
        why = f"  {failed.name}: {failed.error}" if failed else ""
        kept = f"  (lab {record.lab} kept)" if record.kept else ""
        mark = clock_mark(record)
        click.echo(
            f"{record.id:<{width}} {record.status:<11} {record.seconds:7.1f} s{mark}{why}{kept}"
        )
    failing = sum(1 for r in journal.scenarios if r.status != "passed")
    total = len(journal.scenarios)
    if failing:
        verdict = f"run {journal.status}: {failing} of {total} scenario(s) did not pass"
    else:
        verdict = f"run passed: {total} scenario(s)"
    reports = (("journal", journal_path), ("junit", junit_path))
    written = ", ".join(f"{kind} {path}" for kind, path in reports if path is not None)
    click.echo(f"{verdict} in {journal.seconds:.1f} s" + (f"; wrote {written}" if written else ""))


@click.command("inject")
@click.argument("vm")
@click.argument("fault")
@click.option("--lab", "lab_name_", default=None, help="Lab name (default: the only lab).")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A fault parameter (repeatable; the value is read as YAML: 95, true, text).",
)
def inject(vm: str, fault: str, lab_name_: str | None, params: tuple[str, ...]) -> None:
    """Apply one FAULT to a running VM (faults add up: each stays real on its own)."""
    values = parse_params(params)
    fault_by_id(fault)
    client = engines.connect_for_lab(lab_name_)
    lab, summary = apply_fault(client, lab_name_, vm, fault, values)
    click.echo(f"{fault} applied to {vm} in lab {lab}: {summary}")


def parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` options into the same types a scenario file's ``params`` has."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--param {item!r}: expected KEY=VALUE")
        try:
            values[key.strip()] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            values[key.strip()] = raw
    return values
