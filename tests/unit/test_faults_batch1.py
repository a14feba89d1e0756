"""The first batch of faults without a lab: what each one would run in the guest (captured
by a recording target), and — where it can run here — that the script does what the fault
says on files shaped like the guest's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import lab
from lab.extension.handler.main.vmsnapshot import scripts as extension_scripts
from lab.extension.handler.main.vmsnapshot.paths import GuestPaths
from lab.extension.protocol import HANDLER_NAME
from lab.faults import (
    FaultError,
    FaultTarget,
    cpu_saturation,
    extensions_disabled,
    fault_by_id,
    prescript_hang,
)
from lab.faults.broken_extension import corrupt_script
from lab.scenario import load_scenario
from tests.unit.test_nsg_fakes import roster

IDS = (
    "agent-stopped",
    "extensions-disabled",
    "prescript-hang",
    "broken-extension",
    "blocked-egress",
    "cpu-saturation",
)
HANDLER_SOURCE = Path(lab.__file__).parent / "extension" / "handler"
ROSTER = roster("t1")


@dataclass(frozen=True)
class RecordingTarget(FaultTarget):
    """A target whose guest console only records what it is asked to run."""

    scripts: list[str] = field(default_factory=list)

    def run(self, script: str, *, timeout: float = 120.0) -> str:
        self.scripts.append(script)
        return ""


def target(params: dict[str, Any] | None = None) -> RecordingTarget:
    return RecordingTarget(client=None, roster=ROSTER, vm="vm1", params=params or {})  # type: ignore[arg-type]


def bash(script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )


def syntax_ok(script: str) -> bool:
    return bash(f"bash -n <<'SNAPLAB_SCRIPT'\n{script}\nSNAPLAB_SCRIPT").returncode == 0


@pytest.mark.parametrize("fault_id", IDS)
def test_each_fault_is_registered_and_its_scenario_loads(fault_id: str) -> None:
    fault = fault_by_id(fault_id)
    assert fault.id == fault_id and fault.summary
    scenario = load_scenario(fault_id)
    assert [f.fault for f in scenario.spec.faults] == [fault_id]
    assert scenario.steps, "the runbook has no executable step"


def test_agent_stopped_stops_the_service_and_waits_for_both_processes() -> None:
    recorder = target()
    fault_by_id("agent-stopped").inject(recorder)
    (script,) = recorder.scripts
    assert 'systemctl stop "$agent_unit"' in script  # the daemon's own unit (ps -o unit=)
    assert "waagent -(daemon|run-exthandlers)" in script
    assert syntax_ok(script)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("# a\nExtensions.Enabled=y\nX=1\n", "# a\nExtensions.Enabled=n\nX=1\n"),
        ("  Extensions.Enabled=y\n", "Extensions.Enabled=n\n"),
        ("Logs.Verbose=n\n", "Logs.Verbose=n\nExtensions.Enabled=n\n"),
        ("#Extensions.Enabled=y\n", "#Extensions.Enabled=y\nExtensions.Enabled=n\n"),
    ],
)  # fmt: skip
def test_extensions_disabled_edits_the_config_line(tmp_path: Path, before: str, after: str) -> None:
    conf = tmp_path / "waagent.conf"
    conf.write_text(before)
    done = bash(extensions_disabled.edit_script(str(conf)))
    assert done.returncode == 0, done.stderr
    assert conf.read_text() == after


class FakeFabric:
    def __init__(self, reports: list[str | None]) -> None:
        self.reports = reports

    def vm(self, name: str) -> dict[str, Any]:
        last = self.reports.pop(0) if len(self.reports) > 1 else self.reports[0]
        return {"agent": {"status": "Ready", "last_report": last}}


def test_extensions_disabled_waits_for_the_restarted_agents_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reports: list[str | None] = [
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00Z",
        "2999-01-01T00:00:00Z",
    ]
    monkeypatch.setattr(extensions_disabled, "FabricClient", lambda _ip: FakeFabric(reports))
    monkeypatch.setattr(extensions_disabled.time, "sleep", lambda _s: None)
    recorder = target()
    fault_by_id("extensions-disabled").inject(recorder)
    (script,) = recorder.scripts
    assert script.startswith(extensions_disabled.edit_script())
    assert "systemctl restart walinuxagent" in script and syntax_ok(script)


def test_extensions_disabled_fails_when_the_agent_never_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(extensions_disabled, "FabricClient", lambda _ip: FakeFabric([None]))
    monkeypatch.setattr(extensions_disabled, "REPORT_TIMEOUT_SECONDS", 0.2)
    with pytest.raises(FaultError, match="no status report from the restarted agent"):
        fault_by_id("extensions-disabled").inject(target())


def test_prescript_hang_writes_the_template_config_the_extension_accepts(tmp_path: Path) -> None:
    config = prescript_hang.plugin_config("/opt/appdb", 3600)
    assert set(config) == {
        "pluginName", "preScriptLocation", "postScriptLocation", "preScriptParams",
        "postScriptParams", "preScriptNoOfRetries", "postScriptNoOfRetries",
        "timeoutInSeconds", "continueBackupOnFailure", "fsFreezeEnabled",
    }  # fmt: skip
    files = {
        prescript_hang.PLUGIN_CONFIG: (json.dumps(config), 0o600),
        "/opt/appdb/pre-snapshot.sh": (prescript_hang.PRE_SCRIPT, 0o700),
        "/opt/appdb/post-snapshot.sh": (prescript_hang.POST_SCRIPT, 0o700),
    }
    for guest_path, (text, mode) in files.items():
        path = tmp_path / guest_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)

    found = extension_scripts.precheck(GuestPaths(tmp_path, os.getuid()), HANDLER_SOURCE)

    assert found.code == 0, found.notes
    assert found.config is not None
    assert found.config.timeout == 1800  # min(3600, the plugin host's cap)
    assert found.config.continue_on_failure is True
    assert str(found.config.pre_location).endswith("/opt/appdb/pre-snapshot.sh")


def test_the_pre_script_blocks_until_its_application_answers(tmp_path: Path) -> None:
    pipe = tmp_path / "control"
    os.mkfifo(pipe)
    script = tmp_path / "pre.sh"
    script.write_text(prescript_hang.PRE_SCRIPT.replace(prescript_hang.CONTROL_PIPE, str(pipe)))

    hung = subprocess.run(["timeout", "1", "sh", str(script)], capture_output=True, check=False)
    assert hung.returncode == 124  # nobody reads the pipe: the script never returns

    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()))
    reader.start()
    answered = subprocess.run(["timeout", "5", "sh", str(script)], capture_output=True, check=False)
    reader.join(5)
    assert answered.returncode == 0
    assert received == ["flush-and-hold\n"]


def test_prescript_hang_install_script_and_params() -> None:
    recorder = target({"timeout_seconds": 7200, "app_dir": "/srv/app"})
    fault_by_id("prescript-hang").inject(recorder)
    (script,) = recorder.scripts
    assert '"timeoutInSeconds": 7200' in script
    assert "chmod 600 /etc/azure/VMSnapshotScriptPluginConfig.json" in script
    assert "chmod 700 /srv/app/pre-snapshot.sh /srv/app/post-snapshot.sh" in script
    assert f"mkfifo -m 600 {prescript_hang.CONTROL_PIPE}" in script
    assert syntax_ok(script)
    assert '"continueBackupOnFailure": true' in script
    strict = target({"continue_on_failure": False})
    fault_by_id("prescript-hang").inject(strict)
    assert '"continueBackupOnFailure": false' in strict.scripts[0]
    bad_params = (
        {"timeout_seconds": 0},
        {"timeout_seconds": True},
        {"app_dir": "relative"},
        {"continue_on_failure": "no"},
    )
    for params in bad_params:
        with pytest.raises(FaultError):
            fault_by_id("prescript-hang").inject(target(params))


def test_broken_extension_zero_fills_the_handlers_package(tmp_path: Path) -> None:
    handler = tmp_path / f"{HANDLER_NAME}-1.0.92.0"
    shutil.copytree(HANDLER_SOURCE, handler)
    package = handler / "main" / "vmsnapshot"
    sizes = {p.name: p.stat().st_size for p in package.glob("*.py")}

    done = bash(corrupt_script(str(tmp_path)))

    assert done.returncode == 0, done.stderr
    for module in package.glob("*.py"):
        data = module.read_bytes()
        assert len(data) == sizes[module.name] and data == bytes(len(data))
    assert (handler / "HandlerManifest.json").read_text().strip().startswith("[")
    enable = subprocess.run(
        ["python3", "main/handle.py", "enable"], cwd=handler, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert enable.returncode != 0
    assert "null bytes" in enable.stderr


def test_broken_extension_needs_an_installed_handler(tmp_path: Path) -> None:
    done = bash(corrupt_script(str(tmp_path)))
    assert done.returncode == 1
    assert "handler is installed (back the VM up once first)" in done.stderr


def test_cpu_saturation_starts_a_transient_service_of_cpu_workers() -> None:
    recorder = target({"workers": 12, "unit": "app-batch"})
    fault_by_id("cpu-saturation").inject(recorder)
    (script,) = recorder.scripts
    assert "systemd-run --unit=app-batch" in script
    assert "/usr/bin/stress-ng --cpu 12 --quiet" in script
    assert "--nice" not in script  # guests cannot raise priority (no CAP_SYS_NICE)
    assert syntax_ok(script)
    default = target()
    fault_by_id("cpu-saturation").inject(default)
    assert f"--cpu {cpu_saturation.DEFAULT_WORKERS} " in default.scripts[0]
    for params in ({"workers": 0}, {"workers": 1000}, {"workers": "4"}, {"unit": "a b"}):
        with pytest.raises(FaultError):
            fault_by_id("cpu-saturation").inject(target(params))


def test_fault_scripts_are_valid_bash() -> None:
    for script in (
        extensions_disabled.RESTART_AGENT,
        prescript_hang.install_script("/opt/appdb", 3600),
        cpu_saturation.start_script("reporting-batch", 48),
        corrupt_script(),
    ):
        assert syntax_ok(script)
