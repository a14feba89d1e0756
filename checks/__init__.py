"""snaplab's checks: testinfra checks inside the guest and platform checks through the
Azure SDK, each a small function returning a :class:`CheckResult`.

They observe only what an engineer could observe on a real VM and a real platform;
none of them knows which fault, if any, was injected. Run them all with
:func:`run_checks`, or as tests with ``pytest checks --hosts=docker://<container>``.
"""

from checks.context import CheckContext, GuestFacts, context_for, context_from_container
from checks.registry import ALL_CHECKS, GUEST_CHECKS, PLATFORM_CHECKS, Check, run_checks
from checks.result import CheckResult

__all__ = [
    "ALL_CHECKS",
    "GUEST_CHECKS",
    "PLATFORM_CHECKS",
    "Check",
    "CheckContext",
    "CheckResult",
    "GuestFacts",
    "context_for",
    "context_from_container",
    "run_checks",
]
