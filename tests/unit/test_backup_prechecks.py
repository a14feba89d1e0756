"""Azure's pre-checks refuse a backup with the first failing check, in Azure's order."""

from __future__ import annotations

import itertools

import pytest

from lab.platform.backup import codes
from lab.platform.backup.prechecks import RESTORE_POINT_LIMIT, PrecheckFacts, precheck


def test_a_healthy_idle_vm_may_back_up() -> None:
    assert precheck(PrecheckFacts(False, RESTORE_POINT_LIMIT - 1, True)) is None


@pytest.mark.parametrize(
    ("busy", "full", "ready"), list(itertools.product([False, True], repeat=3))
)
def test_order_in_progress_then_limit_then_agent(busy: bool, full: bool, ready: bool) -> None:
    facts = PrecheckFacts(busy, RESTORE_POINT_LIMIT if full else 0, ready)
    if busy:
        expected: codes.JobError | None = codes.BACKUP_OPERATION_IN_PROGRESS
    elif full:
        expected = codes.RP_COLLECTION_LIMIT_REACHED
    elif not ready:
        expected = codes.GUEST_AGENT_STATUS_UNAVAILABLE
    else:
        expected = None
    assert precheck(facts) == expected


def test_limit_is_eighteen_and_inclusive() -> None:
    assert RESTORE_POINT_LIMIT == 18
    assert precheck(PrecheckFacts(False, 17, True)) is None
    assert precheck(PrecheckFacts(False, 18, True)) == codes.RP_COLLECTION_LIMIT_REACHED
    assert precheck(PrecheckFacts(False, 40, True)) == codes.RP_COLLECTION_LIMIT_REACHED
