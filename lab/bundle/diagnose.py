"""Diagnose a log bundle: the checks that work from files, then the same rule table the
lab's diagnosis uses (:data:`lab.diagnosis.rules.RULES`, :func:`causes_from`).

A bundle cannot run every check (no platform, no live guest). The rules keep their
meaning — a failed check names a cause, an unknown one neither names nor blocks it — and
the answer says what it could not look at:

- a cause is named only when its condition holds on the checks that ran; when the
  condition also leans on an exclusion the bundle could not check (``Not(Failed(x))``
  with ``x`` not run), the cause says so;
- a rule whose condition is undecided (three-valued :func:`evaluate` gives None) is
  listed as *undecided* with the checks it needs, never named and never passed over in
  silence, with the lines the bundle does show for it.

Nothing here knows which fault a lab carries: only what the files say.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.result import CheckResult
from lab.bundle.agentlog import errors
from lab.bundle.evidence import CANNOT_RUN, Found, run_bundle_checks
from lab.bundle.reader import Bundle, open_bundle
from lab.diagnosis.engine import causes_from
from lab.diagnosis.model import Cause, runbook_path
from lab.diagnosis.rules import RULES, Rule, checks_in, evaluate


@dataclass(frozen=True)
class Undecided:
    """A rule the bundle can neither confirm nor rule out."""

    cause: str
    needs: tuple[str, ...]  # checks of its condition that did not run or observe
    seen: tuple[str, ...]  # when no cause is named: what the bundle shows for it

    @property
    def runbook(self) -> str:
        return runbook_path(self.cause)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.cause,
            "needs": list(self.needs),
            "seen": list(self.seen),
            "runbook": self.runbook,
        }


@dataclass(frozen=True)
class BundleDiagnosis:
    bundle: str
    causes: tuple[Cause, ...]
    checks: tuple[CheckResult, ...]
    cannot_run: tuple[tuple[str, str], ...]  # (check id, why)
    undecided: tuple[Undecided, ...]
    log_errors: tuple[str, ...]  # the agent's errors and warnings, benign noise left out

    @property
    def cause_ids(self) -> tuple[str, ...]:
        return tuple(cause.id for cause in self.causes)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "causes": [cause.to_json() for cause in self.causes],
            "checks": [{**check.to_json(), "observed": check.observed} for check in self.checks],
            "cannot_run": [{"id": check, "why": why} for check, why in self.cannot_run],
            "undecided": [item.to_json() for item in self.undecided],
            "log_errors": list(self.log_errors),
        }


def diagnose_bundle(bundle: Bundle) -> BundleDiagnosis:
    """Run the file checks over ``bundle`` and name the causes the rule table finds."""
    found = run_bundle_checks(bundle)
    results = {check: item.result for check, item in found.items()}
    named = {cause.id for cause in causes_from(results.values())}

    def unknown(rule: Rule) -> tuple[str, ...]:
        return tuple(
            check
            for check in checks_in(rule.when)
            if check not in results or not results[check].observed
        )

    causes = tuple(_cause(rule, found, unknown(rule)) for rule in RULES if rule.cause in named)
    open_rules = [
        rule for rule in RULES if rule.cause not in named and evaluate(rule.when, results) is None
    ]
    # When nothing is named, each open question shows what the files do say about it.
    undecided = tuple(
        Undecided(
            rule.cause,
            unknown(rule),
            () if causes else _evidence(rule, found, checks_in(rule.when)),
        )
        for rule in open_rules
    )
    return BundleDiagnosis(
        bundle=bundle.path.name,
        causes=causes,
        checks=tuple(item.result for item in found.values()),
        cannot_run=tuple(CANNOT_RUN.items()),
        undecided=undecided,
        log_errors=tuple(str(record) for record in errors(bundle)),
    )


def diagnose_bundle_file(path: Path) -> BundleDiagnosis:
    return diagnose_bundle(open_bundle(path))


def _evidence(
    rule: Rule, found: dict[str, Found], checks: tuple[str, ...] | None = None
) -> tuple[str, ...]:
    """Each failing check's detail (of ``checks``, default the rule's evidence), then
    the bundle lines it rests on."""
    out: list[str] = []
    for check in rule.evidence if checks is None else checks:
        item = found.get(check)
        if item is None or not item.result.failed:
            continue
        out.append(f"{check}: {item.result.detail}")
        out.extend(str(record) for record in item.lines)
    return tuple(out)


def _cause(rule: Rule, found: dict[str, Found], unknown: tuple[str, ...]) -> Cause:
    evidence = list(_evidence(rule, found))
    if unknown:
        evidence.append(
            "not checked from the bundle (the rule assumes they do not fail): " + ", ".join(unknown)
        )
    return Cause(rule.cause, tuple(evidence))
