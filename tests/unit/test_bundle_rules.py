"""Three-valued rule evaluation (lab.diagnosis.rules.evaluate), which a bundle needs:
an unknown check makes a condition unknown unless a known part decides it, and agrees
with ``holds`` whenever every check is known."""

from __future__ import annotations

import itertools

from checks.result import CheckResult
from lab.diagnosis.rules import (
    RULES,
    Failed,
    Not,
    Passed,
    all_of,
    any_of,
    checks_in,
    evaluate,
    holds,
)

OK = CheckResult.ok("a", "fine")
BAD = CheckResult.fail("a", "broken")
UNSEEN = CheckResult.unobserved("a", "not in the bundle")


def test_unknown_and_unobserved_checks_are_none() -> None:
    assert evaluate(Failed("a"), {}) is None
    assert evaluate(Failed("a"), {"a": UNSEEN}) is None
    assert evaluate(Not(Failed("a")), {}) is None
    assert evaluate(Failed("a"), {"a": BAD}) is True
    assert evaluate(Passed("a"), {"a": OK}) is True


def test_a_known_part_decides_all_of_and_any_of() -> None:
    results = {"a": OK}
    assert evaluate(all_of(Failed("a"), Failed("b")), results) is False
    assert evaluate(any_of(Passed("a"), Failed("b")), results) is True
    assert evaluate(all_of(Passed("a"), Failed("b")), results) is None


def test_agrees_with_holds_when_every_check_is_known() -> None:
    outcomes = (OK, BAD)
    for rule in RULES:
        ids = checks_in(rule.when)
        for combo in itertools.islice(itertools.product(outcomes, repeat=len(ids)), 64):
            results = dict(zip(ids, combo, strict=True))
            assert evaluate(rule.when, results) is holds(rule.when, results), rule.cause


def test_checks_in_lists_each_once() -> None:
    assert checks_in(all_of(Failed("a"), Not(Failed("a")), Passed("b"))) == ("a", "b")
