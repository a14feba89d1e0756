"""The rule table: each cause from what its mechanism makes fail, exactly one cause per
mechanism whatever collateral checks also fail, none for a healthy VM."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from checks.registry import ALL_CHECKS, GUEST_CHECKS
from checks.result import CheckResult
from lab.diagnosis import CAUSE_IDS, RULES, causes_from
from lab.diagnosis.rules import AllOf, AnyOf, Condition, Failed, Not, Passed, holds

CATALOG = {
    "blocked-egress",
    "blocked-egress-proxy",
    "stale-agent",
    "agent-stopped",
    "extensions-disabled",
    "broken-extension",
    "extension-update-failed",
    "cpu-saturation",
    "memory-pressure",
    "dhcp-disabled",
    "guest-shutdown",
    "schedule-storm",
    "prescript-hang",
}

# For each mechanism: the checks it makes fail (its signature), and the checks that may
# or may not fail with it (collateral: the job, the instance view, load side effects).
MECHANISMS: dict[str, tuple[set[str], set[str]]] = {
    "blocked-egress": (
        {"guest.storage_reachable", "platform.nsg_egress"},
        {"guest.extension_status", "platform.extensions", "platform.backup_jobs"},
    ),
    "blocked-egress-proxy": (
        {"guest.storage_reachable", "platform.nsg_egress", "guest.agent_proxy"},
        {"guest.extension_status", "platform.extensions", "platform.backup_jobs"},
    ),
    "stale-agent": (
        {"guest.agent_version"},
        {
            "guest.agent_running",
            "guest.agent_restart_policy",
            "platform.vm_agent",
            "platform.backup_jobs",
        },
    ),
    "agent-stopped": ({"guest.agent_running"}, {"platform.vm_agent", "platform.backup_jobs"}),
    "extensions-disabled": (
        {"guest.waagent_conf"},
        {"platform.extensions", "guest.extension_status", "platform.backup_jobs"},
    ),
    "broken-extension": (
        {"guest.handler_files"},
        {"guest.extension_status", "platform.extensions", "platform.backup_jobs"},
    ),
    "extension-update-failed": (
        {"guest.extension_package"},
        {
            "guest.handler_files",
            "platform.extensions",
            "guest.extension_status",
            "platform.backup_jobs",
        },
    ),
    "cpu-saturation": (
        {"guest.cpu_load"},
        {"guest.extension_status", "platform.backup_jobs", "platform.vm_agent"},
    ),
    "memory-pressure": (
        {"guest.memory"},
        {"guest.cpu_load", "guest.agent_running", "guest.extension_status", "platform.backup_jobs"},
    ),
    "dhcp-disabled": (
        {"guest.dhcp"},
        {"guest.wireserver", "platform.vm_agent", "platform.extensions", "platform.backup_jobs"},
    ),
    "guest-shutdown": (
        {"platform.power_state", "platform.vm_agent"},
        {"platform.backup_jobs", "platform.extensions"},
    ),
    "schedule-storm": ({"platform.concurrent_backups"}, {"platform.backup_jobs"}),
    "prescript-hang": (
        {"guest.prepost_scripts"},
        {"guest.extension_status", "guest.cpu_load", "platform.backup_jobs"},
    ),
}
GUEST_IDS = {check.id for check in GUEST_CHECKS}


def results(failing: set[str], *, guest_answers: bool = True) -> list[CheckResult]:
    return [
        CheckResult(check.id, check.id not in failing, f"observed {check.id}")
        for check in ALL_CHECKS
        if guest_answers or check.id not in GUEST_IDS
    ]


def test_the_table_covers_exactly_the_catalog() -> None:
    assert set(CAUSE_IDS) == CATALOG == set(MECHANISMS)
    assert len(CAUSE_IDS) == len(set(CAUSE_IDS))


def test_rules_only_name_checks_that_exist() -> None:
    known = {check.id for check in ALL_CHECKS}

    def names(condition: Condition) -> set[str]:
        if isinstance(condition, Failed | Passed):
            return {condition.check}
        if isinstance(condition, Not):
            return names(condition.condition)
        return set().union(*(names(c) for c in condition.conditions))

    for rule in RULES:
        assert names(rule.when) <= known, rule.cause
        assert set(rule.evidence) <= known, rule.cause


def test_healthy_results_name_no_cause() -> None:
    assert causes_from(results(set())) == ()


@pytest.mark.parametrize("cause", sorted(MECHANISMS))
def test_each_mechanism_names_exactly_its_cause(cause: str) -> None:
    signature, collateral = MECHANISMS[cause]
    answers = cause != "guest-shutdown"
    for size in range(len(collateral) + 1):
        for extra in itertools.combinations(sorted(collateral), size):
            found = causes_from(results(signature | set(extra), guest_answers=answers))
            assert [c.id for c in found] == [cause], (cause, extra)


@pytest.mark.parametrize("cause", sorted(MECHANISMS))
def test_evidence_quotes_the_failing_checks(cause: str) -> None:
    signature, collateral = MECHANISMS[cause]
    (found,) = causes_from(results(signature | collateral, guest_answers=cause != "guest-shutdown"))
    quoted = {item.split(":", 1)[0] for item in found.evidence}
    assert signature <= quoted
    assert all(item.endswith(f"observed {item.split(':', 1)[0]}") for item in found.evidence)
    assert found.runbook == f"scenarios/{cause}/runbook.md"


def test_old_agent_that_is_stopped_without_restart_is_only_stale() -> None:
    failing = {"guest.agent_version", "guest.agent_running", "guest.agent_restart_policy"}
    assert [c.id for c in causes_from(results(failing))] == ["stale-agent"]


def test_current_agent_stopped_is_agent_stopped() -> None:
    assert [c.id for c in causes_from(results({"guest.agent_running"}))] == ["agent-stopped"]


def test_two_independent_mechanisms_name_both() -> None:
    found = causes_from(results({"guest.waagent_conf", "guest.cpu_load"}))
    assert [c.id for c in found] == ["extensions-disabled", "cpu-saturation"]


def test_unobserved_checks_are_neither_evidence_for_nor_against() -> None:
    observed = results({"guest.storage_reachable"})
    unknown = [
        CheckResult.unobserved(r.id, "iptables missing") if r.id == "platform.nsg_egress" else r
        for r in observed
    ]
    assert causes_from(unknown) == ()
    agent = [
        CheckResult.unobserved(r.id, "no answer") if r.id == "guest.agent_version" else r
        for r in results({"guest.agent_running"})
    ]
    assert causes_from(agent) == ()  # agent-stopped needs a version seen to be supported


def test_missing_checks_count_as_unknown() -> None:
    assert not holds(Failed("guest.dhcp"), {})
    assert not holds(Passed("guest.dhcp"), {})
    assert holds(Not(Failed("guest.dhcp")), {})
    assert holds(AllOf(()), {}) and not holds(AnyOf(()), {})


def test_nothing_reads_which_fault_was_injected() -> None:
    root = Path(__file__).resolve().parents[2]
    sources = [
        *root.joinpath("checks").rglob("*.py"),
        *root.joinpath("lab/diagnosis").rglob("*.py"),
    ]
    assert sources
    for source in sources:
        text = source.read_text()
        for forbidden in ("lab.faults", "lab import faults", "scenario.yaml", "snaplab.fault"):
            assert forbidden not in text, f"{source} mentions {forbidden}"


def test_an_os_down_while_its_agent_is_still_ready_is_no_cause() -> None:
    """A reboot under way: the platform shows running, the OS does not answer for a
    moment, the agent's last report is still fresh."""
    failing = {"platform.power_state"}
    assert causes_from(results(failing, guest_answers=False)) == ()


@pytest.mark.parametrize("extra", [set(), {"platform.backup_jobs"}, {"platform.extensions"}])
def test_a_vm_stopped_by_its_own_os_is_no_cause(extra: set[str]) -> None:
    """PowerState/stopped with the OS down is what Azure shows after a shutdown from
    inside: the power and agent checks pass (no agent is expected) and nothing is named,
    whatever the last job or extension status said."""
    assert causes_from(results(extra, guest_answers=False)) == ()
