"""The seam to trainee access: absent module, and the call D2's module answers."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from lab.drill import access_hook
from lab.drill.state import Access, Symptom, Trainee


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path))
    return tmp_path


def _trainee() -> Trainee:
    return Trainee(
        id="t01",
        lab="dra-h-t01",
        vm="vm1",
        scenario="blocked-egress",
        symptom=Symptom(error_code="E", message="m"),
    )


def test_no_access_module_means_no_access(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_hook, "access_module", lambda: None)
    assert access_hook.grant(None, "dra-h", _trainee(), None) is None  # type: ignore[arg-type]


def test_the_call_and_its_answer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[Any, ...]] = []

    def grant_access(
        client: Any, folder: Path, trainee_id: str, roster: Any, symptom: Symptom, *, vm: str
    ) -> dict[str, Any]:
        calls.append((folder, trainee_id, symptom.error_code, vm))
        return {"ssh": "ssh -p 2201 azureuser@127.0.0.1", "env_file": "/e", "port": 2201}

    module = types.SimpleNamespace(grant_access=grant_access)
    monkeypatch.setattr(access_hook, "access_module", lambda: module)
    access = access_hook.grant(None, "dra-h", _trainee(), None)  # type: ignore[arg-type]
    assert isinstance(access, Access)
    assert access.ssh.endswith("azureuser@127.0.0.1")
    assert access.model_dump()["port"] == 2201
    assert calls == [(tmp_path / "drills" / "dra-h", "t01", "E", "vm1")]
