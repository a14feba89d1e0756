"""The journal's JSON shape, and JUnit derived from it (parsed back, not string-matched)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from lab.junit import junit_tree, write_junit
from lab.runner import RunOptions, run_catalog
from tests.unit.test_runner_fakes import FakeDrivers, _job, scenario


def _journal(tmp_path: Path) -> dict[str, Any]:
    """One passing scenario and one whose backup completes instead of failing."""
    ok, bad = scenario("demo"), scenario("broken-one")
    drivers = FakeDrivers()
    journal = run_catalog([ok], drivers, RunOptions(lab_prefix="rn"))
    failing = run_catalog(
        [bad], FakeDrivers(jobs=[_job("Completed")]), RunOptions(keep="failed", lab_prefix="rn")
    )
    journal.scenarios += failing.scenarios
    journal.input["scenarios"].append("broken-one")
    path = tmp_path / "out" / "journal.json"
    journal.write(path)
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_journal_shape(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    assert set(journal) == {
        "format", "input", "started_at", "finished_at", "seconds", "status", "scenarios"
    }  # fmt: skip
    assert journal["status"] == "failed"
    assert journal["input"]["scenarios"] == ["demo", "broken-one"]
    assert journal["input"]["options"] == {"keep": "never", "parallel": 1, "lab_prefix": "rn"}
    assert journal["input"]["time_scale"] > 0
    assert {"snaplab", "python", "docker"} <= set(journal["input"]["versions"])
    ok, bad = journal["scenarios"]
    assert set(ok) >= {
        "id", "title", "lab", "status", "failed_phase", "seconds", "kept",
        "phases", "jobs", "diagnoses", "guest_logs",
    }  # fmt: skip
    assert ok["status"] == "passed" and ok["failed_phase"] is None and ok["lab"] == "rn-demo"
    assert [set(p) for p in ok["phases"]] == [
        {"name", "status", "output", "error", "seconds", "started_at"}
    ] * 9
    assert ok["diagnoses"]["diagnose"]["causes"][0]["runbook"] == "scenarios/demo/runbook.md"
    assert bad["failed_phase"] == "backup-fails" and bad["kept"] is True
    assert bad["guest_logs"]["vm1"]["waagent.log"] == "agent log tail"


def test_junit_has_one_suite_and_one_case_per_scenario(tmp_path: Path) -> None:
    journal = _journal(tmp_path)
    path = tmp_path / "junit.xml"
    write_junit(journal, path)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "snaplab"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "1", "0")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["demo", "broken-one"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == (
        "backup-fails: expected the backup to fail with GuestAgentSnapshotTaskStatusError, "
        "but it completed"
    )
    assert failure.get("type") == "backup-fails"
    assert "--- vm1: waagent.log\nagent log tail" in (failure.text or "")
    assert "backup-fails      failed" in (cases[1].findtext("system-out") or "")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["option.keep"] == "never" and props["version.docker"] == "fake"


def test_junit_for_an_interrupted_run() -> None:
    journal = {
        "seconds": 3.0,
        "started_at": "2026-01-01T00:00:00Z",
        "input": {},
        "scenarios": [
            {
                "id": "a",
                "status": "interrupted",
                "started_at": "x",
                "seconds": 2,
                "phases": [
                    {"name": "provision", "status": "passed", "seconds": 1, "error": None},
                    {"name": "inject", "status": "failed", "seconds": 1,
                     "error": "interrupted (Ctrl-C)"},
                ],
            },
            {"id": "b", "status": "interrupted", "started_at": None, "phases": []},
        ],
    }  # fmt: skip
    suite = junit_tree(journal).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("errors"), suite.get("skipped"), suite.get("failures")) == ("1", "1", "0")
    a, b = suite.findall("testcase")
    error = a.find("error")
    assert error is not None and error.get("message") == "interrupted during inject"
    skipped = b.find("skipped")
    assert skipped is not None and skipped.get("message") == "the run was interrupted first"


def test_text_that_looks_like_xml_is_escaped() -> None:
    journal = {
        "scenarios": [
            {
                "id": "x",
                "status": "failed",
                "phases": [
                    {"name": "runbook", "status": "failed", "seconds": 0,
                     "error": "<b>&</b>", "output": "]]> <x/>"},
                ],
            }
        ]
    }  # fmt: skip
    text = ET.tostring(junit_tree(journal).getroot(), encoding="unicode")
    failure = ET.fromstring(text).find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == "runbook: <b>&</b>"
    assert failure.text == "]]> <x/>"
