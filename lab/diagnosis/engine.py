"""Run every check for a VM and name the causes the rule table finds in the results."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import docker

from checks.context import CheckContext, context_for
from checks.registry import run_checks
from checks.result import CheckResult
from lab.diagnosis.model import Cause, Diagnosis
from lab.diagnosis.rules import RULES, Rule, holds
from lab.platform.roster import Roster


def causes_from(results: Iterable[CheckResult], rules: Sequence[Rule] = RULES) -> tuple[Cause, ...]:
    """The causes whose conditions hold, in table order, each with the details of its
    failing evidence checks."""
    by_id = {result.id: result for result in results}
    found = []
    for rule in rules:
        if not holds(rule.when, by_id):
            continue
        evidence = tuple(
            f"{check}: {by_id[check].detail}"
            for check in rule.evidence
            if check in by_id and by_id[check].failed
        )
        found.append(Cause(rule.cause, evidence))
    return tuple(found)


def diagnose_context(ctx: CheckContext) -> Diagnosis:
    results = run_checks(ctx)
    return Diagnosis(vm=ctx.vm, causes=causes_from(results), checks=results)


def diagnose(client: docker.DockerClient, roster: Roster, vm: str) -> Diagnosis:
    """Diagnose ``vm`` of a running lab: in-guest checks through ``docker exec``, platform
    checks through the Azure SDK against the lab's ARM twin, jobs and NSG rules."""
    return diagnose_context(context_for(client, roster, vm))
