"""The ``drill`` lifecycle: prove a scenario works as a drill, the way a trainee meets it.

Instruqt's idea (every challenge ships a solve script and CI proves that solving makes
the check pass), with a real backup as the check:

1. ``drill-start``: a one-trainee drill of the scenario (``snaplab drill start``'s code:
   the lab broken, its first real backup's failure as the symptom, trainee access);
   the symptom must be the scenario's expected error;
2. ``drill-check-not-fixed``: ``drill check`` must say not yet;
3. ``drill-runbook``: the runbook, applied with only what the trainee has: guest steps
   over the trainee's own SSH (their key, their host port) and platform steps with the
   trainee's env file (their lab's scoped ARM credentials), never the lab's key or the
   fabric's control token (a support case to Microsoft too, with the trainee's own
   credentials);
4. ``drill-check-fixed``: ``drill check`` must say fixed;
5. ``drill-end`` (final): ``drill end`` removes the lab and the drill's state.

The drill is named after the run's lab (``<lab head>-<hash>``, so its trainee lab
``<drill>-t01`` fits a lab name), and that trainee lab is the one the runner's Ctrl-C
handling knows.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.runbook import StepPlace, platform_env, run_steps
from lab.runner.drivers import DockerDrivers
from lab.runner.phases import Phase, PhaseFailed, PhaseSkipped, RunContext
from lab.runner.placement import lab_drivers

if TYPE_CHECKING:
    import docker

from lab.provision.ssh_client import ROOT_STEP, SshTarget

TRAINEE = "t01"
# Names of the caller's environment a trainee's platform step does not inherit: any
# credentials or lab pointers the runner's own process may hold.
_NOT_INHERITED = ("ARM_", "AZURE_", "IDENTITY_", "SNAPLAB_", "REQUESTS_CA_BUNDLE", "SSL_CERT")


def drill_name_for(lab: str) -> str:
    """A drill name (at most 16 characters) for a run's lab name."""
    digest = hashlib.sha256(lab.encode()).hexdigest()[:4]
    return f"{lab[:11].rstrip('-')}-{digest}"


def _drivers(ctx: RunContext) -> DockerDrivers:
    """The engine of the drill's trainee lab (``<drill>-t01``, not the item's lab name)."""
    on = lab_drivers(ctx.drivers, f"{drill_name_for(ctx.lab)}-{TRAINEE}")
    if on is None:
        raise PhaseFailed("the drill variant needs the real drivers (a Docker engine)")
    return on


def _client(ctx: RunContext) -> docker.DockerClient:
    return _drivers(ctx).client


def _drill_start(ctx: RunContext) -> str:
    from lab.drill.plan import seats
    from lab.drill.start import StartRequest, start_drill

    name = drill_name_for(ctx.lab)
    (seat,) = seats(name, [ctx.scenario.id])
    request = StartRequest(name, [seat], {ctx.scenario.id: ctx.scenario}, None, None)
    lines: list[str] = []

    class _Progress:
        def phase(self, trainee: str, text: str) -> None:
            lines.append(f"{trainee}: {text}")

        def done(self, trainee: str, text: str) -> None:
            lines.append(f"{trainee}: {text}")

    ctx.on_lab_started(seat.lab)
    ctx.lab_started = True
    state = start_drill(_client(ctx), request, _Progress(), _drivers(ctx))
    trainee = state.trainee(TRAINEE)
    from lab.provision import lab as labs

    ctx.roster = labs.roster_of(_client(ctx), seat.lab)
    symptom = trainee.symptom
    expected = ctx.scenario.spec.expect.backup_error
    lines.append(f"symptom: {symptom.error_code}: {symptom.message}" if symptom else "no symptom")
    if symptom is None or symptom.error_code != expected:
        raise PhaseFailed(f"expected the symptom {expected}", "\n".join(lines))
    if not trainee.access.ssh or not trainee.access.env_file:
        raise PhaseFailed("the trainee was given no SSH command or env file", "\n".join(lines))
    lines.append(f"connect: {trainee.access.ssh}")
    return "\n".join(lines)


def _check(ctx: RunContext, want_fixed: bool) -> str:
    from lab.drill.check import run_check

    result = run_check(_client(ctx), drill_name_for(ctx.lab), TRAINEE, ctx.drivers)
    if result.fixed != want_fixed:
        causes = ", ".join(result.causes_left) or "none"
        seen = f"job {result.job_status or 'none'}; causes the checks still find: {causes}"
        raise PhaseFailed(
            f"expected {'fixed' if want_fixed else 'not yet'}", f"{result.line()}\n{seen}"
        )
    return result.line()


def _check_not_fixed(ctx: RunContext) -> str:
    return _check(ctx, want_fixed=False)


def _check_fixed(ctx: RunContext) -> str:
    return _check(ctx, want_fixed=True)


@dataclass(frozen=True)
class TraineeTarget(SshTarget):
    """A guest as the trainee reaches it: the one SSH line their roster gives them."""

    command: tuple[str, ...] = ()

    def step_argv(self, ssh: Path = Path("/usr/bin/ssh")) -> list[str]:
        first, *rest = self.command
        batch = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        return [first, *batch, *rest, shlex.join(ROOT_STEP)]


def read_env_file(path: Path) -> dict[str, str]:
    """``export NAME=value`` lines (shell-quoted) as a mapping; other lines are ignored."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            found[key] = value
    return found


def trainee_env(exports: dict[str, str], lab: str, vm: str) -> dict[str, str]:
    """A trainee's platform step: their env file's exports (and ``az`` logged in with
    their identity when the CLI is installed), on a base without the caller's creds."""
    from lab.azcli.install import installed
    from lab.azcli.login import LabAccess
    from lab.azcli.login import exports as az_exports

    base = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    scoped = dict(exports)
    if installed() is not None:
        access = LabAccess(
            lab,
            scoped["ARM_ENDPOINT"],
            scoped["IDENTITY_ENDPOINT"],
            scoped["IDENTITY_HEADER"],
            Path(scoped["REQUESTS_CA_BUNDLE"]),
        )
        scoped.update(az_exports(access))
    env = platform_env(scoped, lab, vm, base)
    env.pop("SNAPLAB_LAB", None)  # the trainee's env file names their VM, not the lab
    return env


def _drill_runbook(ctx: RunContext) -> str:
    from lab.drill.state import load

    state = load(drill_name_for(ctx.lab))
    trainee = state.trainee(TRAINEE)
    roster = ctx.need_roster()
    guest = roster.guest_by_name(trainee.vm)
    if guest is None:
        raise PhaseFailed(f"the lab has no VM {trainee.vm}")
    target = TraineeTarget(
        trainee.vm,
        "127.0.0.1",
        _unused_files(),
        command=tuple(shlex.split(trainee.access.ssh)),
    )
    exports = read_env_file(Path(trainee.access.env_file))
    as_trainee = StepPlace(
        guests={trainee.vm: target},
        default_vm=trainee.vm,
        platform_env=trainee_env(exports, trainee.lab, trainee.vm),
        cwd=Path(tempfile.gettempdir()),
    )
    result = run_steps(ctx.scenario.steps, as_trainee, cancel=ctx.cancel)
    source = ctx.scenario.runbook_ref
    transcript = result.transcript(source)
    failed = result.failed
    if failed is not None:
        raise PhaseFailed(f"{source} as the trainee: {failed.failure()}", transcript)
    return transcript


def _unused_files() -> Any:
    """The lab-key files a :class:`TraineeTarget` never uses (its command has the key)."""
    from lab.provision.ssh_keys import LabSshFiles

    return LabSshFiles(Path("/nonexistent"))


def _drill_end(ctx: RunContext) -> str:
    from lab.drill.end import end_drill
    from lab.drill.state import drill_names

    name = drill_name_for(ctx.lab)
    if not ctx.lab_started:
        raise PhaseSkipped("no drill was started")
    if name not in drill_names():
        # start_drill removed what it had made when it failed
        ctx.on_lab_removed(f"{name}-{TRAINEE}")
        ctx.drivers.down(f"{name}-{TRAINEE}")
        return f"drill {name} was not running; lab {name}-{TRAINEE} removed"
    with tempfile.TemporaryDirectory(prefix=f"snaplab-{name}-debrief-") as out:
        result = end_drill(_client(ctx), name, Path(out), ctx.drivers)
        written = sorted(f.name for f in result.files)
    for lab in result.labs_removed:
        ctx.on_lab_removed(lab)
    if "debrief.json" not in written:
        raise PhaseFailed(f"drill end wrote no debrief.json (it wrote: {', '.join(written)})")
    return (
        f"drill {name} ended: {', '.join(result.labs_removed)} removed; wrote {', '.join(written)}"
    )


DRILL_PHASES: tuple[Phase, ...] = (
    Phase("drill-start", _drill_start),
    Phase("drill-check-not-fixed", _check_not_fixed),
    Phase("drill-runbook", _drill_runbook),
    Phase("drill-check-fixed", _check_fixed),
    Phase("drill-end", _drill_end, final=True),
)
