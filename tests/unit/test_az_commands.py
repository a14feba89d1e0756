"""``az vm run-command invoke`` and ``az backup job list`` with the real, pinned ``az``
against the twin in-process: Run Command's fake agent (tests/unit/test_arm_compute.py)
and the vault over the real backup service (tests/unit/recovery_services_rig.py). What
az sends (its api-versions, its polling, the GET of ``Location`` after Run Command) must
be what the twin answers; skipped, saying why, without ``snaplab setup --az``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.platform.arm.app import ArmTwin
from lab.platform.arm.main import build_server, tls_context
from lab.provision.tls import write_lab_tls
from tests.unit.az_rig import Az, az_for, needs_az
from tests.unit.backup_fakes import stays_transitioning
from tests.unit.recovery_services_rig import TOKEN as VAULT_TOKEN
from tests.unit.recovery_services_rig import Vault, vault
from tests.unit.test_arm_compute import RG, ROSTER, TOKEN, AgentFabric, FakePower

__all__ = ["vault"]  # the fixture

pytestmark = needs_az


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def agent_lab(tmp_path: Path) -> Iterator[tuple[AgentFabric, Az]]:
    files = write_lab_tls(ROSTER.lab, tmp_path / "tls")
    fabric = AgentFabric()
    # As test_arm_compute's twin, but with the lab's Retry-After of 1 s: az polls every
    # 30 s when it gets none (and reads 0 as none).
    twin = ArmTwin(
        fabric, FakePower(), TOKEN, extension_timeout=lambda: 5.0, extension_poll_seconds=0.02
    )
    twin.compute.extensions.agent_wait = lambda: 2.0
    server = build_server(twin, 0, tls_context(files.server_cert, files.server_key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.socket.getsockname()[1]}"
    yield fabric, az_for(ROSTER.lab, url, files.ca_cert, TOKEN)
    server.shutdown()
    server.server_close()


def _invoke(az: Az) -> tuple[int, str, str]:
    done = az(
        "vm", "run-command", "invoke", "-g", RG, "-n", "vm1",
        "--command-id", "RunShellScript", "--scripts", "echo hello", "uname -s",
        "-o", "json",
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_run_command_invoke_returns_the_scripts_output(
    agent_lab: tuple[AgentFabric, Az],
) -> None:
    fabric, az = agent_lab
    code, out, err = _invoke(az)
    assert code == 0, err
    (status,) = json.loads(out)["value"]
    assert status["code"] == "ProvisioningState/succeeded"
    assert status["displayStatus"] == "Provisioning succeeded"
    assert "[stdout]\nhello\nLinux" in status["message"]
    assert fabric.published[-1][1] == "Microsoft.CPlat.Core.RunCommandLinux"


def test_run_command_invoke_with_extensions_disabled_fails_as_azure_does(
    agent_lab: tuple[AgentFabric, Az],
) -> None:
    fabric, az = agent_lab
    fabric.mode = "disabled"
    code, _, err = _invoke(az)
    assert code != 0
    assert err.startswith("ERROR: (VMExtensionProvisioningError) ")
    assert "Extensions.Enabled=y" in err


def test_backup_job_list_shows_the_vaults_jobs(vault: Vault, tmp_path: Path) -> None:
    az = az_for(vault.roster.lab, vault.endpoint, tmp_path / "tls" / "ca.pem", VAULT_TOKEN)
    vault.trigger("vm1")
    vault.spawn.run_all()
    vault.clock.advance(5)
    vault.agent.behaviour = stays_transitioning
    vault.trigger("vm1")
    vault.spawn.run_all()
    done = az("backup", "job", "list", "-g", vault.rg, "-v", vault.name, "-o", "json")
    assert done.returncode == 0, done.stderr
    jobs = [job["properties"] for job in json.loads(done.stdout)]
    assert [(j["operation"], j["status"]) for j in jobs] == [
        ("Backup", "Failed"),
        ("Backup", "Completed"),
    ]
    (error,) = jobs[0]["errorDetails"]
    assert error["errorCode"] == "GuestAgentSnapshotTaskStatusError"
    assert error["errorString"].startswith("Could not communicate with the VM agent")
    table = az("backup", "job", "list", "-g", vault.rg, "-v", vault.name, "-o", "table")
    assert "Failed" in table.stdout and "Completed" in table.stdout


def test_backup_errors_are_arms_error_bodies(vault: Vault, tmp_path: Path) -> None:
    az = az_for(vault.roster.lab, vault.endpoint, tmp_path / "tls" / "ca.pem", VAULT_TOKEN)
    done = az("backup", "job", "list", "-g", vault.rg, "-v", "someone-elses-vault")
    assert done.returncode != 0
    assert done.stderr.startswith("ERROR: (")


def test_backup_now_by_the_vms_name_and_its_job(vault: Vault, tmp_path: Path) -> None:
    az = az_for(vault.roster.lab, vault.endpoint, tmp_path / "tls" / "ca.pem", VAULT_TOKEN)
    vaults = az("backup", "vault", "list", "-g", vault.rg, "--query", "[].name", "-o", "tsv")
    assert vaults.stdout.split() == [vault.name], vaults.stderr
    items = az("backup", "item", "list", "-g", vault.rg, "-v", vault.name,
               "--query", "[].properties.friendlyName", "-o", "tsv")  # fmt: skip
    assert "vm1" in items.stdout.split(), items.stderr
    started = az(
        "backup", "protection", "backup-now", "-g", vault.rg, "-v", vault.name,
        "--container-name", "vm1", "--item-name", "vm1",
        "--backup-management-type", "AzureIaasVM", "--query", "name", "-o", "tsv",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    job = started.stdout.strip()
    vault.spawn.run_all()
    fields = "properties.[operation, status, entityFriendlyName]"
    shown = az("backup", "job", "show", "-g", vault.rg, "-v", vault.name, "-n", job,
               "--query", fields, "-o", "tsv")  # fmt: skip
    assert shown.stdout.split() == ["Backup", "Completed", "vm1"], shown.stderr
