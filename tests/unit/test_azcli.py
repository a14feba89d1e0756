"""The Azure CLI's install and per-lab login (lab/azcli), and the trust bundle.

The install is driven with a stand-in ``python`` that plays pip (no PyPI here); the
login and the commands of az-cli.md run the real, pinned ``az`` against the twin served
over TLS with the unit fakes — skipped, saying why, when ``snaplab setup --az`` has not
installed it (CI installs it: .ci/run).
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from click.testing import CliRunner

import lab.cli
import lab.cli_run
from lab.azcli import install, login
from lab.azcli.install import AzInstall
from lab.azcli.login import LabAccess
from lab.errors import AzCliError, LabNotFound
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.main import build_server, tls_context
from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.provision.state_dir import az_config_dir
from lab.provision.tls import write_lab_tls
from lab.provision.trust import ca_bundle
from lab.runbook import Step
from tests.unit.az_rig import Az, az_for, needs_az
from tests.unit.test_armtwin import RG, ROSTER, SUB, TOKEN, FakeFabric, FakePower
from tests.unit.test_runner_fakes import RUNBOOK_MD, FakeDrivers, fake_fault, write_scenario

__all__ = ["fake_fault"]  # the fixture the fake catalog's fault needs


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(root))
    return root


# ------------------------------------------------------------------ when a run needs az


def _step(code: str, kind: str = "platform", language: str = "bash") -> Step:
    return Step(line=1, kind=kind, language=language, code=code)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code",
    [
        "az vm get-instance-view -g g -n v\n",
        "set -e\nstatus=$(az vm get-instance-view -g g -n v --query x -o tsv)\n",
        "for i in 1 2; do az network nsg rule list -g g --nsg-name n; done\n",
        "true && az backup job list -g g -v v\n",
    ],
)
def test_a_platform_step_that_types_az_needs_it(code: str) -> None:
    assert install.needed_by([_step("echo hi\n"), _step(code)])


@pytest.mark.parametrize(
    ("code", "kind", "language"),
    [
        ("az vm list\n", "guest", "bash"),
        ("import os  # az vm list\nprint(os.name)\n", "platform", "python"),
        ("echo lazy haze azure\n", "platform", "bash"),
        ("ls /var/lib/waagent/az\n", "platform", "bash"),
    ],
)
def test_steps_that_do_not_type_az(code: str, kind: str, language: str) -> None:
    assert not install.needed_by([_step(code, kind, language)])


# ------------------------------------------------------------------ the install


def _fake_venv(venv: Path, pip_exit: int = 0) -> Path:
    """A venv whose ``python -m pip`` prints what pip prints, makes ``bin/az``, exits."""
    (venv / "bin").mkdir(parents=True)
    log = venv / "pip-calls"
    python = venv / "bin" / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'for i in $(seq 1 60); do echo "Collecting package$i"; done\n'
        'echo "Installing collected packages: package1, package2"\n'
        f"touch {venv}/bin/az\n"
        f'[ {pip_exit} -eq 0 ] || echo "ERROR: No matching distribution found"\n'
        f"exit {pip_exit}\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    return log


def test_install_runs_pip_once_with_the_pinned_version(tmp_path: Path) -> None:
    venv = tmp_path / ".venv-az"
    log = _fake_venv(venv)
    lines: list[str] = []
    assert install.installed(venv) is None
    found = install.ensure_installed(lines.append, venv)
    assert found.az == venv / "bin" / "az"
    assert f"{install.PACKAGE}=={install.PINNED_VERSION}" in log.read_text()
    assert any("50 packages collected" in line for line in lines)
    assert any(line.endswith(" s)") and "installed in" in line for line in lines)
    link = found.path_folder / "az"
    assert link.is_symlink() and link.resolve() == found.az.resolve()
    assert os.listdir(found.path_folder) == ["az"]  # nothing else goes on PATH
    again: list[str] = []
    assert install.ensure_installed(again.append, venv) == found
    assert log.read_text().count("install") == 1 and "already installed" in again[0]


def test_a_stamp_of_another_version_is_installed_again(tmp_path: Path) -> None:
    venv = tmp_path / ".venv-az"
    log = _fake_venv(venv)
    (venv / install.STAMP).write_text("2.0.0\n")
    (venv / "bin" / "az").touch()
    assert install.installed(venv) is None
    install.ensure_installed(venv=venv)
    assert install.installed(venv) is not None and log.read_text().count("install") == 1


def test_a_failed_pip_is_one_line_and_leaves_no_stamp(tmp_path: Path) -> None:
    venv = tmp_path / ".venv-az"
    _fake_venv(venv, pip_exit=1)
    with pytest.raises(AzCliError, match="No matching distribution found"):
        install.ensure_installed(venv=venv)
    assert install.installed(venv) is None


def test_the_venv_is_beside_the_checkouts_venv_unless_moved(tmp_path: Path) -> None:
    assert install.venv_dir({}).name == ".venv-az"
    assert (install.venv_dir({}).parent / "pyproject.toml").is_file()
    assert install.venv_dir({install.VENV_ENV: str(tmp_path)}) == tmp_path


# ------------------------------------------------------------------ the trust bundle


def test_the_bundle_is_the_public_roots_and_the_lab_ca(tmp_path: Path, state: Path) -> None:
    ca = write_lab_tls("unit", tmp_path / "tls").ca_cert
    (state / "unit").mkdir(parents=True)
    bundle = ca_bundle("unit", ca)
    text = bundle.read_text()
    assert text.rstrip().endswith(ca.read_text().strip())
    assert text.count("BEGIN CERTIFICATE") > 50  # certifi's roots are there too
    before = bundle.stat().st_mtime_ns
    assert ca_bundle("unit", ca) == bundle and bundle.stat().st_mtime_ns == before


def test_a_lab_without_its_ca_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(LabNotFound, match="no CA file"):
        ca_bundle("gone", tmp_path / "missing.pem")


# ------------------------------------------------------------------ exports


def test_no_az_no_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login, "installed", lambda: None)
    access = LabAccess("unit", "https://127.0.0.1:1", "https://127.0.0.1:1/msi", "t", tmp_path)
    assert login.exports(access) == {}


def test_exports_put_only_az_first_on_path_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    az = AzInstall(tmp_path / ".venv-az")
    access = LabAccess("unit", "https://127.0.0.1:1", "https://127.0.0.1:1/msi", "t", tmp_path)
    monkeypatch.setattr(login, "ensure_logged_in", lambda az, access: tmp_path / "cfg")
    first = login.exports(access, "/usr/bin:/bin", az)
    assert first["PATH"] == f"{az.path_folder}:/usr/bin:/bin"
    assert login.exports(access, first["PATH"], az)["PATH"] == first["PATH"]
    assert first["AZURE_CONFIG_DIR"] == str(tmp_path / "cfg")
    assert first["AZURE_CORE_INSTANCE_DISCOVERY"] == "false"
    assert first["AZURE_CORE_COLLECT_TELEMETRY"] == "false"


# ------------------------------------------------------------------ the real az


@pytest.fixture
def twin(tmp_path: Path, state: Path) -> Iterator[tuple[str, Path]]:
    files = write_lab_tls("unit", tmp_path / "tls")
    server = build_server(
        ArmTwin(FakeFabric(), FakePower(), TOKEN, retry_after_seconds=0),
        0,
        tls_context(files.server_cert, files.server_key),
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.socket.getsockname()[1]}", files.ca_cert
    server.shutdown()
    server.server_close()


@pytest.fixture
def az(twin: tuple[str, Path]) -> Az:
    return az_for(ROSTER.lab, *twin, TOKEN)


@needs_az
def test_the_lab_is_logged_in_like_cloud_shell(az: Az) -> None:
    shown = az("account", "show", "--query", "[name, id, user.name, environmentName]", "-o", "tsv")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split("\n")[:4] == [
        f"snaplab {ROSTER.lab}",
        SUB,
        "systemAssignedIdentity",
        f"snaplab-{ROSTER.lab}",
    ]
    assert (az_config_dir(ROSTER.lab) / login.STAMP).is_file()


@needs_az
def test_az_reads_the_agent_from_the_instance_view(az: Az) -> None:
    query = "instanceView.vmAgent.statuses[0].displayStatus"
    done = az("vm", "get-instance-view", "-g", RG, "-n", "vm1", "--query", query, "-o", "tsv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Ready"
    listed = az("vm", "extension", "list", "-g", RG, "--vm-name", "vm1", "--query", "[].name")
    assert listed.returncode == 0 and "VMSnapshotLinux" in listed.stdout


@needs_az
def test_az_errors_are_arms_error_bodies(az: Az) -> None:
    done = az("vm", "get-instance-view", "-g", RG, "-n", "nope")
    assert done.returncode == 3
    assert done.stderr.startswith("ERROR: (ResourceNotFound) The Resource ")


@needs_az
def test_az_creates_lists_and_deletes_an_nsg_rule(az: Az) -> None:
    nsg = ("-g", RG, "--nsg-name", "vm1-nsg")
    created = az(
        "network", "nsg", "rule", "create", *nsg, "-n", "deny-storage", "--priority", "100",
        "--direction", "Outbound", "--access", "Deny", "--protocol", "*",
        "--destination-address-prefixes", "Storage", "--destination-port-ranges", "*",
        "--query", "provisioningState", "-o", "tsv",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "Succeeded"
    listed = az("network", "nsg", "rule", "list", *nsg, "--query", "[].name", "-o", "tsv")
    assert listed.stdout.split() == ["deny-storage"]
    deleted = az("network", "nsg", "rule", "delete", *nsg, "-n", "deny-storage")
    assert deleted.returncode == 0, deleted.stderr
    assert az("network", "nsg", "rule", "list", *nsg, "-o", "tsv").stdout.strip() == ""


@needs_az
def test_the_sdk_works_with_the_same_exports(
    twin: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca = twin
    bundle = ca_bundle(ROSTER.lab, ca)
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{url}{IDENTITY_PATH}")
    monkeypatch.setenv("IDENTITY_HEADER", TOKEN)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    credential = DefaultAzureCredential(exclude_cli_credential=True)
    compute = ComputeManagementClient(credential, SUB, base_url=url)
    assert [vm.name for vm in compute.virtual_machines.list(RG)] == ["vm1", "vm2", "vm3"]
    compute.close()


# ------------------------------------------------------------------ snaplab run


@pytest.mark.parametrize(("types_az", "installs"), [(True, 1), (False, 0)])
@pytest.mark.usefixtures("fake_fault")
def test_a_run_installs_az_first_when_a_runbook_types_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, types_az: bool, installs: int
) -> None:
    root = tmp_path / "scenarios"
    monkeypatch.setenv("SNAPLAB_SCENARIOS_DIR", str(root))
    monkeypatch.chdir(tmp_path)
    platform = "```bash platform\naz vm get-instance-view -g g -n v\n```\n" if types_az else ""
    write_scenario(root, runbook=RUNBOOK_MD + platform)
    calls: list[str] = []
    monkeypatch.setattr(install, "ensure_installed", lambda report: calls.append("az"))
    monkeypatch.setattr(lab.cli_run.engine, "ensure_engine", lambda report: object())
    monkeypatch.setattr(lab.cli_run.engine, "raise_inotify_limit", lambda: None)
    monkeypatch.setattr(lab.cli_run, "run_drivers", lambda client, names, report: FakeDrivers())
    result = CliRunner().invoke(lab.cli_run.run, ["demo"], obj={})
    assert result.exit_code == 0, result.output
    assert calls == ["az"] * installs


@pytest.mark.parametrize(("flag", "installs"), [(["--az"], 1), ([], 0)])
def test_setup_installs_az_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], installs: int
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(lab.cli.engine, "ensure_engine", lambda report: object())
    monkeypatch.setattr(lab.cli.engine, "raise_inotify_limit", lambda: None)
    monkeypatch.setattr(lab.cli.images, "all_recipes", lambda: [])
    monkeypatch.setattr(lab.cli.images, "prune_stale_images", lambda client, recipes: 0)
    monkeypatch.setattr(
        install, "ensure_installed", lambda report: calls.append("az") or AzInstall(tmp_path)
    )
    result = CliRunner().invoke(lab.cli.cli, ["setup", *flag], obj={})
    assert result.exit_code == 0, result.output
    assert calls == ["az"] * installs
    assert ("az: " in result.output) == bool(installs)
