"""Every case file under cases/ is valid, and writes back as it reads (lab.cases.load)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cases.load import dump_case, load_case, parse_case
from lab.cases.plan import plan_case
from lab.faults import known_fault_ids

CASES = sorted((Path(__file__).resolve().parents[2] / "cases").glob("**/*.yaml"))


def test_there_are_example_cases() -> None:
    assert len(CASES) >= 2


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_case_file_is_valid(path: Path) -> None:
    case = load_case(path, known_fault_ids())
    assert parse_case(dump_case(case), path.name, known_fault_ids()) == case
    assert case.symptom is not None, "an example case says what the customer saw"
    plan_case(case)  # and the lab can be planned from it
