"""What one check reports: which check, whether it passed, and what it saw.

``detail`` is always an observation a person can verify by hand ("walinuxagent:
inactive (dead) since ...; no waagent process"), never a verdict alone, because the
diagnosis quotes it as evidence and an engineer must be able to trust it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def one_line(text: str, limit: int = 200) -> str:
    """Collapse whitespace (agent messages carry newlines) and cap the length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    ``observed`` is False when the check could not look at all (the platform did not
    answer, a command could not run). Such a result is shown as failed, but the
    diagnosis rules treat it as unknown: an observation that was never made must not
    count as evidence for or against a cause.
    """

    id: str
    passed: bool
    detail: str
    observed: bool = True

    @classmethod
    def ok(cls, check_id: str, detail: str) -> CheckResult:
        return cls(check_id, True, detail)

    @classmethod
    def fail(cls, check_id: str, detail: str) -> CheckResult:
        return cls(check_id, False, detail)

    @classmethod
    def unobserved(cls, check_id: str, why: str) -> CheckResult:
        return cls(check_id, False, f"not observed: {why}", observed=False)

    @property
    def failed(self) -> bool:
        """Failed *and* observed: the only kind of failure rules may rely on."""
        return self.observed and not self.passed

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "passed": self.passed, "detail": self.detail}
