"""``snaplab drill ...``: the trainer's commands (parse, call, print; the work is in
:mod:`lab.drill`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lab.cli_engines import engine_option
from lab.drill import board, capacity, plan, watch
from lab.drill.check import run_check
from lab.drill.end import end_drill
from lab.drill.hints import next_hint
from lab.drill.reset import reset_trainee
from lab.drill.roster import TRAINEE_ROSTER, TRAINER_ROSTER
from lab.drill.start import StartRequest, start_drill
from lab.drill.state import (
    DrillNotFound,
    check_name,
    drill_dir,
    load,
    locked,
    resolve_drill,
)
from lab.provision import engine, engines
from lab.scenario import load_scenarios, scenario_ids

console = Console(stderr=True, log_path=False)


class TraineeProgress:
    """One row per trainee and its phase: a live table on a terminal, plain lines
    elsewhere (CI logs, the benchmark), never a logger's ``file.py:NN`` column."""

    def __init__(self, trainees: list[str], out: Console = console) -> None:
        self.out = out
        self.began = time.monotonic()
        self.rows: dict[str, tuple[str, float]] = {t: ("queued", self.began) for t in trainees}
        self.finished: dict[str, float] = {}
        self.lock = threading.Lock()
        self.live = out.is_terminal

    def phase(self, trainee: str, text: str) -> None:
        with self.lock:
            self.rows[trainee] = (text, time.monotonic())
        if not self.live:
            self._line(trainee, text)

    def done(self, trainee: str, text: str) -> None:
        with self.lock:
            self.rows[trainee] = (text, time.monotonic())
            self.finished[trainee] = time.monotonic() - self.began
        if not self.live:
            self._line(trainee, text)

    def _line(self, trainee: str, text: str) -> None:
        seconds = time.monotonic() - self.began
        self.out.print(f"{seconds:6.1f}s  {trainee}  {text}", markup=False, highlight=False)

    def __rich__(self) -> Group:
        table = Table(box=None, pad_edge=False)
        table.add_column("trainee")
        table.add_column("phase")
        table.add_column("time", justify="right")
        now = time.monotonic()
        with self.lock:
            for trainee, (text, _) in self.rows.items():
                seconds = self.finished.get(trainee, now - self.began)
                table.add_row(trainee, text, f"{seconds:.0f}s")
        ready = sum(1 for text, _ in self.rows.values() if text == "ready")
        return Group(Text(f"{ready}/{len(self.rows)} labs ready"), table)

    @contextmanager
    def shown(self) -> Iterator[TraineeProgress]:
        if not self.live:
            yield self
            return
        with Live(self, console=self.out, refresh_per_second=4, transient=False):
            yield self


@click.group()
def drill() -> None:
    """Break-fix drills: a class of trainees, each with a broken lab, a check and hints."""


@drill.command("start")
@click.option("--trainees", "count", type=int, required=True, help="How many trainees.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    metavar="ID",
    help="A scenario (repeatable; cycled over the trainees).",
)
@click.option(
    "--random",
    "random_count",
    type=int,
    default=None,
    metavar="K",
    help="K distinct scenarios drawn from the catalog (cycled over the trainees).",
)
@click.option("--seed", type=int, default=None, help="Seed of the draw (default: random).")
@click.option(
    "--time-limit", default="45m", show_default=True, help="Time limit (45m, 1h30m, 90s)."
)
@click.option("--name", default=None, help="Drill name (default drill-MMDD-HHMM).")
@engine_option
def drill_start(
    count: int,
    scenarios: tuple[str, ...],
    random_count: int | None,
    seed: int | None,
    time_limit: str,
    name: str | None,
    engine_names: tuple[str, ...],
) -> None:
    """Bring up one broken lab per trainee and write the rosters."""
    drill_name = check_name(name or plan.default_name(datetime.now(UTC)))
    limit = plan.parse_duration(time_limit)
    draw = seed if seed is not None else int(time.time()) % 100_000
    ids = plan.assign(count, scenario_ids(), scenarios, random_count, draw)
    placed_on = engines.resolve_all(engine_names)
    loaded = {s.id: s for s in load_scenarios(sorted(set(ids)))}
    need = capacity.check_fits([loaded[i] for i in ids])
    capacity.check_cores([loaded[i] for i in ids])
    seats = plan.seats(drill_name, ids)
    progress = TraineeProgress([s.trainee for s in seats])
    console.print(
        f"drill {drill_name}: {count} trainee(s), ~{capacity.gib(need)} of memory, "
        f"{capacity.start_workers(count)} lab(s) starting at once"
        + (f", on {len(placed_on)} engines" if len(placed_on) > 1 else ""),
        markup=False,
        highlight=False,
    )
    client = engine.ensure_engine(lambda step: console.print(step, markup=False))
    engine.raise_inotify_limit()
    request = StartRequest(drill_name, seats, loaded, limit, draw, placed_on)
    began = time.monotonic()
    with progress.shown():
        state = start_drill(client, request, progress)
    folder = drill_dir(state.name)
    click.echo(
        f"drill {state.name} started: {len(state.trainees)} lab(s) in "
        f"{time.monotonic() - began:.0f}s, time limit {limit // 60} min"
    )
    click.echo(f"trainer's roster (with scenarios): {folder / TRAINER_ROSTER}")
    click.echo(f"roster for the room (no scenarios): {folder / TRAINEE_ROSTER}")


_DRILL = click.option("--drill", "drill_name", default=None, help="Drill (default: the only one).")


@drill.command("status")
@_DRILL
def drill_status(drill_name: str | None) -> None:
    """The board: trainee, state, attempts, hints, time (frozen at the time limit)."""
    name = resolve_drill(drill_name)
    state = load(name)
    if state.frozen_at is None and state.past_limit():
        with locked(name) as saved:
            saved.freeze_if_due()
            state = saved.model_copy(deep=True)
    click.echo(board.render(state))


@drill.command("watch")
@_DRILL
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    default=watch.LOOK_SECONDS,
    show_default=True,
    help="Seconds between looks for check requests.",
)
def drill_watch(drill_name: str | None, every: float) -> None:
    """The live board, answering each trainee's `check-my-solution` run in their VM."""
    name = resolve_drill(drill_name)
    client = engine.connect()
    stop = threading.Event()
    recent: list[str] = []

    def report(line: str) -> None:
        recent.append(f"{datetime.now(UTC):%H:%M:%S}  {line}")
        del recent[:-8]
        if not console.is_terminal:
            console.print(recent[-1], markup=False, highlight=False)

    server = threading.Thread(
        target=watch.serve, args=(client, name, report, stop, every), daemon=True
    )
    server.start()

    def view() -> Group:
        try:
            shown = board.render(load(name))
        except DrillNotFound:
            shown = f"drill {name} has ended"
        return Group(Text(shown), Text(""), *(Text(r) for r in recent))

    try:
        if console.is_terminal:
            with Live(view(), console=console, refresh_per_second=1) as live:
                while server.is_alive():
                    live.update(view())
                    server.join(1.0)
        else:
            server.join()
    except KeyboardInterrupt:
        stop.set()
        server.join(5.0)
    click.echo(f"drill {name}: no longer answering checks from the VMs")


@drill.command("check")
@click.argument("trainee")
@_DRILL
def drill_check(trainee: str, drill_name: str | None) -> None:
    """Run a real backup and the checks for TRAINEE: fixed or not yet."""
    name = resolve_drill(drill_name)
    client = engine.connect()
    with console.status(f"{trainee}: running a backup and the checks") as status:
        result = run_check(client, name, trainee, report=status.update)
    click.echo(result.line())


@drill.command("hint")
@click.argument("trainee")
@_DRILL
def drill_hint(trainee: str, drill_name: str | None) -> None:
    """Reveal TRAINEE's next runbook step (recorded)."""
    hint = next_hint(resolve_drill(drill_name), trainee)
    if hint.step == 0:
        click.echo(f"{trainee}: {hint.text}")
        return
    click.echo(f"{trainee}: hint {hint.step} of {hint.total}\n\n{hint.text}")


@drill.command("reset")
@click.argument("trainee")
@_DRILL
def drill_reset(trainee: str, drill_name: str | None) -> None:
    """Give TRAINEE a fresh lab with the same scenario and the same access."""
    name = resolve_drill(drill_name)
    client = engine.connect()
    with console.status(f"{trainee}: resetting") as status:
        fresh = reset_trainee(client, name, trainee, status.update)
    click.echo(f"{trainee}: fresh lab {fresh.lab}; connect: {fresh.access.ssh or 'not set up'}")


@drill.command("end")
@_DRILL
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the debrief goes (default ./<drill>-debrief).",
)
def drill_end(drill_name: str | None, out_dir: Path | None) -> None:
    """Reveal the causes, write the debrief and remove every lab of the drill."""
    name = resolve_drill(drill_name)
    client = engine.connect()
    target = out_dir or Path(f"{name}-debrief")
    with console.status(f"ending drill {name}"):
        result = end_drill(client, name, target)
    for reveal in result.reveals:
        fixed = f"fixed at {reveal.fixed_at}" if reveal.fixed_at else "not fixed"
        title = f": {reveal.title}" if reveal.title else ""
        click.echo(f"{reveal.trainee}: {reveal.scenario} ({fixed}){title}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"debrief: {', '.join(str(f) for f in result.files)}")
    click.echo(f"drill {name} ended: {len(result.labs_removed)} lab(s) removed")
