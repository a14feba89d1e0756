"""The whole failure catalog, run by the runner against real labs: the cross-matrix.

Every scenario must fail its first backup with its expected code, be diagnosed as
exactly its own cause (and nothing else), be cleared by its runbook, back up again,
and then diagnose clean. The run's journal and JUnit land in reports/ for CI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import docker
import pytest
from click.testing import CliRunner

from lab.cli_run import run
from lab.provision import lab as labs
from lab.runner import lab_name
from lab.scenario import scenario_ids

pytestmark = pytest.mark.integration

PREFIX = f"ct{os.getpid() % 100000}"
REPORTS = Path(__file__).resolve().parents[2] / "reports"
PARALLEL = os.environ.get("SNAPLAB_CATALOG_PARALLEL", "1")


@pytest.fixture(scope="module")
def catalog_journal(docker_client: docker.DockerClient) -> dict[str, Any]:
    REPORTS.mkdir(exist_ok=True)
    journal, junit = REPORTS / "catalog-journal.json", REPORTS / "catalog-junit.xml"
    try:
        CliRunner().invoke(
            run,
            [
                "--parallel",
                PARALLEL,
                "--lab-prefix",
                PREFIX,
                "--journal",
                str(journal),
                "--junit",
                str(junit),
            ],
        )
    finally:
        for scenario_id in scenario_ids():
            labs.down(docker_client, lab_name(PREFIX, scenario_id))
    assert junit.exists()
    return dict(json.loads(journal.read_text()))


def _record(journal: dict[str, Any], scenario_id: str) -> dict[str, Any]:
    return next(s for s in journal["scenarios"] if s["id"] == scenario_id)


@pytest.mark.parametrize("scenario_id", scenario_ids())
def test_scenario_proves_its_runbook(catalog_journal: dict[str, Any], scenario_id: str) -> None:
    record = _record(catalog_journal, scenario_id)
    failed = record["failed_phase"]
    errors = {p["name"]: p["error"] for p in record["phases"]}
    assert record["status"] == "passed", f"{failed}: {errors.get(failed)}"


@pytest.mark.parametrize("scenario_id", scenario_ids())
def test_diagnosis_names_exactly_its_own_cause(
    catalog_journal: dict[str, Any], scenario_id: str
) -> None:
    diagnoses = _record(catalog_journal, scenario_id)["diagnoses"]
    assert [c["id"] for c in diagnoses["diagnose"]["causes"]] == [scenario_id]
    assert diagnoses["verify"]["causes"] == []
