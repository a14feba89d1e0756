"""``case up``/``case run`` with the lab's parts faked: steps in the plan's order, the lab
removed on any failure, ``run`` comparing and tearing down (lab.cases.build)."""

from __future__ import annotations

from typing import Any

import pytest

from lab.cases import build
from lab.cases.build import CaseBuildFailed
from lab.cases.load import parse_case
from lab.cases.plan import Step
from lab.errors import LabExists
from lab.faults import FaultError
from lab.platform.roster import Roster

CASE = parse_case(
    "format: 1\nname: fake-case\nvms:\n  - {name: vm1, agent: 2.7.3.0, dhcp: false}\n"
    "nsg:\n  rules:\n    - {name: Deny, access: Deny, priority: 100, destination: Storage}\n"
    "symptom: {error_code: UserErrorGuestAgentStatusUnavailable}\n"
)
ROSTER = Roster(
    lab="fake-case",
    subnet="10.213.9.0/24",
    fabric_ip="10.213.9.2",
    storage_ip="10.213.9.3",
    guests=(),
)


class Lab:
    """The lab's parts, recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_on: str | None = None) -> None:
        self.events: list[str] = []
        self.fail_on = fail_on
        monkeypatch.setattr(build.labs, "lab_names", lambda client: self.names())
        monkeypatch.setattr(build.labs, "up", self.up)
        monkeypatch.setattr(build.labs, "down", lambda client, lab: self.events.append("down"))
        monkeypatch.setattr(build.origin, "record_case", lambda lab, case: None)
        monkeypatch.setattr(build, "_apply", self.apply)
        monkeypatch.setattr(build, "_backup", self.backup)

    def names(self) -> list[str]:
        return ["taken"]

    def up(self, client: Any, spec: Any, report: Any) -> Roster:
        self.events.append(f"up {spec.name} {[vm.agent for vm in spec.vms]}")
        return ROSTER

    def apply(self, client: Any, roster: Roster, step: Step) -> None:
        self.events.append(step.describe())
        if self.fail_on is not None and self.fail_on in (step.kind, step.fault):
            raise FaultError("the guest refused")

    def backup(self, client: Any, roster: Roster, vm: str) -> dict[str, Any]:
        self.events.append(f"backup {vm}")
        return {
            "job_id": "j",
            "vm": vm,
            "status": "Failed",
            "error_code": "UserErrorGuestAgentStatusUnavailable",
            "subtasks": [],
        }


def test_up_applies_the_plan_and_leaves_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Lab(monkeypatch)
    built = build.build_case(None, CASE, None, lambda _: None)  # type: ignore[arg-type]
    assert built.plan.lab == "fake-case"
    assert fake.events == [
        "up fake-case ['2.7.3.0']",
        "nsg.rules[0]: nsg-rule on vm1",
        "vms[0].dhcp: fault dhcp-disabled on vm1",
    ]


@pytest.mark.parametrize("fail_on", ["nsg-rule", "dhcp-disabled"])
def test_a_failed_step_removes_the_lab(monkeypatch: pytest.MonkeyPatch, fail_on: str) -> None:
    fake = Lab(monkeypatch, fail_on)
    with pytest.raises(CaseBuildFailed, match="failed: the guest refused") as caught:
        build.build_case(None, CASE, None, lambda _: None)  # type: ignore[arg-type]
    assert "(lab fake-case removed)" in str(caught.value)
    assert fake.events[-1] == "down"


def test_a_lab_name_in_use_is_refused_before_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Lab(monkeypatch)
    with pytest.raises(LabExists):
        build.build_case(None, CASE, "taken", lambda _: None)  # type: ignore[arg-type]
    assert fake.events == []


@pytest.mark.parametrize(("keep", "last"), [(False, "down"), (True, "backup vm1")])
def test_run_compares_and_tears_down(
    monkeypatch: pytest.MonkeyPatch, keep: bool, last: str
) -> None:
    fake = Lab(monkeypatch)
    result = build.run_case(None, CASE, None, lambda _: None, keep)  # type: ignore[arg-type]
    assert result.comparison.matched
    assert result.to_json()["result"] == "match" and result.to_json()["kept"] is keep
    assert fake.events[-1] == last
