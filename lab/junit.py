"""JUnit XML derived from a run's journal: one testsuite per run, one testcase per scenario.

It reads only the journal's JSON form (:meth:`lab.journal.Journal.to_dict`), so a report
can be rebuilt from a journal file kept by CI. A failed scenario's ``<failure>`` message
is its failed phase and that phase's error; the body holds the phase's output tail and
the guests' log tails, which is what a CI page shows first.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUITE_NAME = "snaplab"
CLASS_NAME = "snaplab.scenarios"
TAIL_LINES = 40


def junit_tree(journal: Mapping[str, Any]) -> ET.ElementTree[ET.Element]:
    scenarios = journal.get("scenarios", [])
    failures = sum(1 for s in scenarios if s["status"] == "failed")
    errors = sum(1 for s in scenarios if s["status"] == "interrupted" and _started(s))
    skipped = sum(1 for s in scenarios if s["status"] == "interrupted" and not _started(s))
    root = ET.Element("testsuites")
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": SUITE_NAME,
            "tests": str(len(scenarios)),
            "failures": str(failures),
            "errors": str(errors),
            "skipped": str(skipped),
            "time": _seconds(journal.get("seconds")),
            "timestamp": str(journal.get("started_at") or ""),
        },
    )
    _properties(suite, journal.get("input", {}))
    for scenario in scenarios:
        _testcase(suite, scenario)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(journal: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(journal).write(path, encoding="utf-8", xml_declaration=True)


def _properties(suite: ET.Element, run_input: Mapping[str, Any]) -> None:
    properties = ET.SubElement(suite, "properties")
    values: dict[str, Any] = {"time_scale": run_input.get("time_scale")}
    values.update({f"option.{k}": v for k, v in run_input.get("options", {}).items()})
    values.update({f"version.{k}": v for k, v in run_input.get("versions", {}).items()})
    for name, value in values.items():
        ET.SubElement(properties, "property", {"name": name, "value": str(value)})


def _testcase(suite: ET.Element, scenario: Mapping[str, Any]) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "classname": CLASS_NAME,
            "name": scenario["id"],
            "time": _seconds(scenario.get("seconds")),
        },
    )
    failed = next((p for p in scenario["phases"] if p["status"] == "failed"), None)
    if scenario["status"] == "failed" and failed is not None:
        element = ET.SubElement(
            case,
            "failure",
            {"message": f"{failed['name']}: {failed['error']}", "type": failed["name"]},
        )
        element.text = _failure_text(failed, scenario.get("guest_logs", {}))
    elif scenario["status"] == "interrupted":
        if _started(scenario):
            where = failed["name"] if failed else "a phase boundary"
            ET.SubElement(case, "error", {"message": f"interrupted during {where}"})
        else:
            ET.SubElement(case, "skipped", {"message": "the run was interrupted first"})
    out = ET.SubElement(case, "system-out")
    out.text = "\n".join(
        f"{p['name']:<17} {p['status']:<8} {p.get('seconds', 0):7.1f} s"
        + (f"  {p['error']}" if p.get("error") else "")
        for p in scenario["phases"]
    )


def _failure_text(phase: Mapping[str, Any], guest_logs: Mapping[str, Any]) -> str:
    parts = [_tail(phase.get("output") or "(no output)")]
    for vm, logs in guest_logs.items():
        for name, text in logs.items():
            parts.append(f"--- {vm}: {name}\n{_tail(str(text))}")
    return "\n".join(parts)


def _started(scenario: Mapping[str, Any]) -> bool:
    return scenario.get("started_at") is not None


def _tail(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])


def _seconds(value: Any) -> str:
    return f"{float(value or 0):.3f}"
