"""Every in-guest check as a test against the ``--hosts`` guest."""

from __future__ import annotations

import pytest

from checks.context import CheckContext
from checks.registry import GUEST_CHECKS, Check


@pytest.mark.parametrize("check", GUEST_CHECKS, ids=lambda check: check.id)
def test_guest_check(check: Check, answering_guest: CheckContext) -> None:
    result = check(answering_guest)
    if not result.passed:
        pytest.fail(f"{result.id}: {result.detail}", pytrace=False)
