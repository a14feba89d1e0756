"""The ``round-trip`` lifecycle: from a broken VM's log bundle to a lab that fails the same way.

What a support engineer does with a customer's case, proved for a catalog scenario:

1. the scenario's lab is built and broken, and its backup fails (the shared phases);
2. ``collect-bundle``: the VM's log bundle, as ``snaplab collect-logs --full`` makes it
   (the real agent's ``waagent -collect-logs`` where the version has it), taken
   :data:`COLLECT_AFTER_SECONDS` after the failed job, as a customer sends it after the
   failure, not within the second the job failed: the agent keeps logging what it tries
   (2.7's daemon, its cached WireServer gone, tries its own DHCP request only after a
   30 s WireServer timeout and a 10 s pause, about 40 s after it restarted);
3. ``diagnose-bundle``: ``diagnose --bundle`` over that file alone must name the scenario's
   cause. A cause that only the platform shows (an NSG rule, a crowded policy, the CPU
   over time) cannot be named from a guest's files: there the bundle diagnosis must leave
   it *undecided* — the scenario's cause among its candidates, with the checks it could not
   run named — rather than guess or name another;
4. ``other-evidence``: what the engineer asks the customer for, read from the scenario's
   lab before it is removed (:mod:`lab.cases.other_evidence`): the NSG's rules, the
   policy and the VMs on it, ``top``/``free``, ``/etc/environment`` and the script
   plugin's configuration from the guest's shell, the power state and whether the guest
   answers. Never the scenario file or the fault that broke the lab;
5. ``import-case``: ``case import`` (redaction on, as an engineer shares it) turns the
   bundle into a case file; the customer's symptom (the failed job's code and message) is
   written into it as the engineer would copy it from the ticket, and the other evidence
   is added, each field with its source in ``evidence``. The file is read back through
   the case loader, as ``case up`` would read it;
6. the scenario's lab is removed, then ``case-backup-fails``: ``case up`` builds a lab
   from the imported file alone (under the same lab name), and its backup must fail with
   the same job error. A case whose VM is on a backup policy (the customer's failed job
   was the schedule's) waits for that schedule's job, as ``without-fix`` does for
   schedule-storm; otherwise it is an on-demand backup.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lab.runner.phases import PHASES, Phase, PhaseFailed, RunContext, record_job
from lab.runner.placement import lab_drivers

if TYPE_CHECKING:
    import docker

BUNDLE = "bundle"
COLLECT_AFTER_SECONDS = 45.0
CASE = "case"
OTHER = "other"


def _client(ctx: RunContext) -> docker.DockerClient:
    """The engine of the item's lab (the case's lab goes on the same one)."""
    on = lab_drivers(ctx.drivers, ctx.lab)
    if on is None:
        raise PhaseFailed("the round-trip variant needs the real drivers (a Docker engine)")
    return on.client


def _scratch(ctx: RunContext) -> Path:
    folder = ctx.scratch.get("folder")
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix=f"snaplab-{ctx.lab}-"))
        ctx.scratch["folder"] = folder
    return Path(folder)


def _collect_bundle(ctx: RunContext) -> str:
    from lab.bundle.collect import collect_logs

    if ctx.cancel.wait(COLLECT_AFTER_SECONDS):
        raise PhaseFailed("interrupted before the bundle was collected")
    collected = collect_logs(_client(ctx), ctx.lab, ctx.vm, full=True)
    path = _scratch(ctx) / f"{ctx.vm}-logs.zip"
    path.write_bytes(collected.data)
    ctx.scratch[BUNDLE] = path
    return (
        f"{COLLECT_AFTER_SECONDS:g} s after the failed job: {len(collected.data)} bytes in "
        f"{collected.seconds:.1f} s, {collected.describe()}"
    )


def _diagnose_bundle(ctx: RunContext) -> str:
    from lab.bundle.diagnose import diagnose_bundle_file

    found = diagnose_bundle_file(Path(ctx.scratch[BUNDLE]))
    document = found.to_json()
    ctx.record.diagnoses["bundle"] = document
    expected = sorted(set(ctx.scenario.spec.expect.diagnosis))
    named = sorted(set(found.cause_ids))
    undecided = sorted({u.cause for u in found.undecided})
    output = json.dumps(document, indent=1)[:4000]
    if named == expected:
        return f"the bundle names {named}"
    if not named and set(expected) <= set(undecided):
        return (
            f"the bundle leaves {expected} undecided (platform-only evidence), "
            f"candidates {undecided}"
        )
    raise PhaseFailed(
        f"the bundle diagnosis named {named} (undecided {undecided}), expected {expected}",
        output,
    )


def _other_evidence(ctx: RunContext) -> str:
    from lab.cases.other_evidence import gather

    found = gather(_client(ctx), ctx.need_roster(), ctx.vm)
    ctx.scratch[OTHER] = found
    lines = [f"{path}: {source}" for path, source in found.evidence.items()]
    lines += [f"not read: {note}" for note in found.notes]
    return "\n".join(lines) or "nothing beyond the bundle (no NSG rule, policy, load or power)"


def _import_case(ctx: RunContext) -> str:
    from lab.cases.build import load_buildable
    from lab.cases.importer import import_bundle
    from lab.cases.load import dump_case, parse_case
    from lab.cases.other_evidence import OtherEvidence

    imported = import_bundle(Path(ctx.scratch[BUNDLE]), redact=True, name=ctx.lab)
    document = json.loads(imported.case.model_dump_json(exclude_none=True))
    if document["vms"][0]["name"] != ctx.vm:
        raise PhaseFailed(
            f"the imported case's VM is {document['vms'][0]['name']}, the bundle's is {ctx.vm}"
        )
    failing: dict[str, Any] = ctx.record.jobs.get("backup-fails") or {}
    document["symptom"] = {
        "status": "Failed",
        "vm": ctx.vm,
        "error_code": failing.get("error_code"),
        "message": failing.get("error_message"),
    }
    other: OtherEvidence = ctx.scratch.get(OTHER) or OtherEvidence()
    document = other.apply(document)
    path = _scratch(ctx) / "case.yaml"
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    path.write_text(dump_case(parse_case(text, str(path))))
    case = load_buildable(path)
    ctx.scratch[CASE] = case
    faults = ", ".join(f"{f.fault} on {f.vm}" for f in case.faults) or "none"
    return f"case {path.name}: faults {faults}\n{path.read_text()[:6000]}"


def _remove_source_lab(ctx: RunContext) -> str:
    ctx.drivers.down(ctx.lab)
    ctx.roster = None
    return f"lab {ctx.lab} (the scenario's) removed"


def _case_backup_fails(ctx: RunContext) -> str:
    from lab.cases.build import build_case
    from lab.provision.fabric_client import FabricClient
    from lab.provision.vault import LabVault

    lines: list[str] = []
    client = _client(ctx)
    case = ctx.scratch[CASE]
    built = build_case(client, case, ctx.lab, lines.append)
    ctx.roster = built.roster
    lines.extend(built.plan.notes)
    vm = case.symptom_vm
    policy = case.backup.policy
    limit = ctx.backup_limit
    if policy is not None and vm in (policy.vms or [v.name for v in case.vms]):
        view = LabVault.of(client, ctx.lab).policy(policy.name)
        due = float(view.get("next_run_in_lab_seconds") or 0.0)
        lines.append(f"{vm} is on policy {policy.name}: its next run is in {due:g} lab s")
        seen = {job["job_id"] for job in FabricClient(built.roster.fabric_ip).jobs(vm)}
        limit += max(due, 0.0)
        job = ctx.drivers.scheduled_backup(built.roster, vm, policy.name, seen, limit, ctx.cancel)
    else:
        job = ctx.drivers.backup(built.roster, vm, limit, ctx.cancel)
    record_job(ctx, "case-backup-fails", job, limit)
    failing: dict[str, Any] = ctx.record.jobs.get("backup-fails") or {}
    lines.append(
        f"{job.get('job_id')}: {job.get('status')} {job.get('error_code') or ''} "
        f"{job.get('error_message') or ''}".rstrip()
    )
    if job.get("status") == "Failed" and job.get("error_code") == failing.get("error_code"):
        return "\n".join(lines)
    raise PhaseFailed(
        f"the imported case's lab did not fail as the scenario did "
        f"({failing.get('error_code')}): {job.get('status')} {job.get('error_code') or ''}",
        "\n".join(lines),
    )


def _cleanup(ctx: RunContext) -> str:
    folder = ctx.scratch.get("folder")
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return _named("teardown").run(ctx)


def _named(name: str) -> Phase:
    return next(p for p in PHASES if p.name == name)


ROUND_TRIP_PHASES: tuple[Phase, ...] = (
    _named("provision"),
    _named("warmup"),
    _named("inject"),
    _named("backup-fails"),
    Phase("collect-bundle", _collect_bundle),
    Phase("diagnose-bundle", _diagnose_bundle),
    Phase("other-evidence", _other_evidence),
    Phase("import-case", _import_case),
    Phase("remove-scenario-lab", _remove_source_lab),
    Phase("case-backup-fails", _case_backup_fails),
    Phase("teardown", _cleanup, final=True),
)
