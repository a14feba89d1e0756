"""Every platform check as a test for the ``--hosts`` guest's VM."""

from __future__ import annotations

import pytest

from checks.context import CheckContext
from checks.registry import PLATFORM_CHECKS, Check


@pytest.mark.parametrize("check", PLATFORM_CHECKS, ids=lambda check: check.id)
def test_platform_check(check: Check, check_context: CheckContext) -> None:
    result = check(check_context)
    if not result.passed:
        pytest.fail(f"{result.id}: {result.detail}", pytrace=False)
