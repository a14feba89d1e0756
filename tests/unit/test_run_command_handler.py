"""The lab's RunCommandLinux handler (lab/extension/run_command) and its package.

The handler runs here as the agent runs it, in a handler directory with
``HandlerEnvironment.json``, ``config/<seq>.settings`` and ``status/``, with its data
folder moved under tmp; protected settings are encrypted to a tenant certificate exactly
as the fabric encrypts them. What is checked is what Azure's handler does: the status
message "Enable succeeded: \\n[stdout]\\n...\\n[stderr]\\n...", "Enable succeeded" for a
script that fails, "Enable failed: ..." for settings it cannot run, one run per
sequence number.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import io
import json
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from lab.extension import run_command_package
from lab.platform.artifacts import ArtifactStore
from lab.platform.certificates import TenantCertificate

SOURCE = run_command_package.HANDLER_DIR / "bin" / "run_command.py"


@pytest.fixture
def handler_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("lab_run_command_handler", SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    monkeypatch.setattr(module, "DATA_DIR", tmp_path / "run-command")
    monkeypatch.setattr(module, "WAAGENT_LIB", tmp_path / "waagent")
    return module


@pytest.fixture
def handler_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "waagent" / "Microsoft.CPlat.Core.RunCommandLinux-1.0.5"
    (directory / "config").mkdir(parents=True)
    (directory / "status").mkdir()
    environment = [
        {
            "version": 1.0,
            "handlerEnvironment": {
                "logFolder": str(tmp_path / "log"),
                "configFolder": str(directory / "config"),
                "statusFolder": str(directory / "status"),
            },
        }
    ]
    (directory / "HandlerEnvironment.json").write_text(json.dumps(environment))
    return directory


def _settings(
    directory: Path, seq: int, public: object, protected: object = None, thumb: str = ""
) -> None:
    handler: dict[str, object] = {"publicSettings": public}
    if protected is not None:
        handler["protectedSettings"] = protected
        if thumb:
            handler["protectedSettingsCertThumbprint"] = thumb
    doc = {"runtimeSettings": [{"handlerSettings": handler}]}
    (directory / "config" / f"{seq}.settings").write_text(json.dumps(doc))


def _script(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode())).decode()


def _enable(
    module: ModuleType, directory: Path, seq: int, capsys: pytest.CaptureFixture[str]
) -> int:
    """Run ``enable`` as the worker the shim starts, with the agent's ConfigSequenceNumber."""
    code: int = module.main(["enable"], {"ConfigSequenceNumber": str(seq)}, directory)
    return code


def _status(directory: Path, seq: int) -> dict[str, object]:
    doc = json.loads((directory / "status" / f"{seq}.status").read_text())
    status = doc[0]["status"]
    assert isinstance(status, dict)
    return status


def test_enable_runs_the_protected_script_and_reports_its_output(
    handler_module: ModuleType,
    handler_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    certificate = TenantCertificate(tmp_path / "certs")
    lib = tmp_path / "waagent"
    (lib / f"{certificate.thumbprint}.crt").write_bytes(certificate.cert_pem)
    (lib / f"{certificate.thumbprint}.prv").write_bytes(certificate.key_pem)
    ciphertext, thumbprint = certificate.encrypt_settings(
        {"script": _script("echo hello\nuname -s\n")}
    )
    _settings(handler_dir, 0, {}, ciphertext, thumbprint)
    assert _enable(handler_module, handler_dir, 0, capsys) == 0
    status = _status(handler_dir, 0)
    assert status["operation"] == "Enable"
    assert status["status"] == "success"
    assert status["formattedMessage"] == {
        "lang": "en",
        "message": "Enable succeeded: \n[stdout]\nhello\nLinux\n\n[stderr]\n",
    }
    download = tmp_path / "run-command" / "download" / "0"
    assert (download / "stdout").read_text() == "hello\nLinux\n"
    assert oct((download / "script.sh").stat().st_mode & 0o777) == "0o500"
    settings = json.loads((handler_dir / "config" / "0.settings").read_text())
    assert "protectedSettings" not in settings["runtimeSettings"][0]["handlerSettings"]
    log = capsys.readouterr().out
    assert "event=enabled" in log and "seq=0" in log


def test_a_failing_script_still_succeeds_with_its_stderr(
    handler_module: ModuleType, handler_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _settings(handler_dir, 3, {}, {"script": _script("echo out; ls /does-not-exist; exit 7")})
    assert _enable(handler_module, handler_dir, 3, capsys) == 0
    status = _status(handler_dir, 3)
    assert status["status"] == "success"
    message = status["formattedMessage"]["message"]  # type: ignore[index]
    assert message.startswith("Enable succeeded: \n[stdout]\nout\n\n[stderr]\nls: cannot access")
    assert "failed to execute command" in capsys.readouterr().out


def test_command_to_execute_in_public_settings(
    handler_module: ModuleType, handler_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _settings(handler_dir, 1, {"commandToExecute": "echo HelloStdout; echo HelloStderr >&2"})
    _enable(handler_module, handler_dir, 1, capsys)
    assert _status(handler_dir, 1)["formattedMessage"]["message"] == (  # type: ignore[index]
        "Enable succeeded: \n[stdout]\nHelloStdout\n\n[stderr]\nHelloStderr\n"
    )


@pytest.mark.parametrize(
    ("public", "protected", "reason"),
    [
        ({}, {}, "invalid configuration: 'commandToExecute' is not specified"),
        (
            {"badElement": 1, "commandToExecute": "date"},
            None,
            "invalid public settings JSON: badElement",
        ),
        (
            {"commandToExecute": "date"},
            {"commandToExecute": "date"},
            "specified both in public and protected",
        ),
        ({"script": "!!not base64!!"}, None, "failed to base64 decode script"),
    ],
)
def test_settings_it_cannot_run_fail_enable(
    handler_module: ModuleType,
    handler_dir: Path,
    capsys: pytest.CaptureFixture[str],
    public: object,
    protected: object,
    reason: str,
) -> None:
    _settings(handler_dir, 0, public, protected)
    assert _enable(handler_module, handler_dir, 0, capsys) == 3
    status = _status(handler_dir, 0)
    assert status["status"] == "error"
    message = status["formattedMessage"]["message"]  # type: ignore[index]
    assert message.startswith("Enable failed: failed to get configuration: ")
    assert reason in message


def test_a_sequence_number_runs_once(
    handler_module: ModuleType,
    handler_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "ran"
    _settings(handler_dir, 2, {"commandToExecute": f"echo x >> {marker}"})
    _enable(handler_module, handler_dir, 2, capsys)
    _enable(handler_module, handler_dir, 2, capsys)
    assert marker.read_text() == "x\n"
    assert "already processed, will not run again" in capsys.readouterr().out
    _settings(handler_dir, 1, {"commandToExecute": f"echo y >> {marker}"})
    _enable(handler_module, handler_dir, 1, capsys)  # older than the last one run
    assert marker.read_text() == "x\n"


def test_an_interrupted_run_is_settled_on_the_next_enable(
    handler_module: ModuleType,
    handler_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "run-command").mkdir()
    (tmp_path / "run-command" / "mrseq").write_text("4")
    handler = handler_module.Handler.load(handler_dir, {})
    handler_module.write_status(handler, 4, "Enable", "transitioning", "")
    _enable(handler_module, handler_dir, 4, capsys)
    status = _status(handler_dir, 4)
    assert status["status"] == "success"
    assert status["formattedMessage"]["message"] == (  # type: ignore[index]
        "Enable succeeded: Last script execution didn't finish."
    )


def test_the_shims_placeholder_and_the_other_commands(
    handler_module: ModuleType, handler_dir: Path, tmp_path: Path
) -> None:
    _settings(handler_dir, 5, {"commandToExecute": "true"})
    main = handler_module.main
    assert main(["placeholder"], {}, handler_dir) == 0  # no ConfigSequenceNumber: newest file
    assert _status(handler_dir, 5) == {
        "operation": "Enable",
        "status": "transitioning",
        "formattedMessage": {"lang": "en", "message": "Enable in progress"},
    }
    data = tmp_path / "run-command"
    assert main(["install"], {}, handler_dir) == 0
    assert data.is_dir()
    assert main(["disable"], {"ConfigSequenceNumber": "5"}, handler_dir) == 0
    assert _status(handler_dir, 5)["formattedMessage"] == {
        "lang": "en",
        "message": "Disable succeeded",
    }
    assert main(["uninstall"], {}, handler_dir) == 0
    assert not data.exists()
    assert main(["bogus"], {}, handler_dir) == 2
    assert main(["enable"], {}, tmp_path / "nowhere") == 3


def test_the_package(tmp_path: Path) -> None:
    version = run_command_package.LATEST_VERSION
    blob = run_command_package.build_run_command_zip(version)
    assert blob == run_command_package.build_run_command_zip(version)  # deterministic
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in archive.infolist()}
        manifest = json.loads(archive.read("HandlerManifest.json"))
    assert modes == {
        "HandlerManifest.json": 0o644,
        "bin/run-command-shim": 0o755,
        "bin/run_command.py": 0o755,
    }
    assert manifest[0]["handlerManifest"]["enableCommand"] == "bin/run-command-shim enable"
    with pytest.raises(ValueError, match="unknown Run Command handler version"):
        run_command_package.build_run_command_zip("9.9")
    [path] = run_command_package.write_run_command_zips(tmp_path / "artifacts")
    assert path.name == "Microsoft.CPlat.Core.RunCommandLinux__1.0.5.zip"
    store = ArtifactStore("http://10.0.0.2")
    store.load_directory(tmp_path / "artifacts")
    assert [v.version for v in store.versions(run_command_package.HANDLER_NAME)] == ["1.0.5"]


def test_the_twin_and_the_package_name_the_same_handler() -> None:
    from lab.platform.arm.compute_run_command import HANDLER

    assert HANDLER == run_command_package.HANDLER_NAME
