"""case import (lab.cases.importer) on bundles collected from real labs
(tests/fixtures/bundles) and on a customer's bundle that owes nothing to the lab."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from lab.cases.importer import import_bundle
from lab.cases.load import load_case
from lab.cli import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
HANDLER = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"


@pytest.mark.parametrize(
    ("fixture", "agent", "distro"),
    [
        ("healthy-2.2.47", "2.2.47", "bookworm"),
        ("healthy-2.7.3.0", "2.7.3.0", "bookworm"),
        ("healthy-2.12.0.2", "2.12.0.2", "trixie"),
    ],
)
def test_lab_bundles_give_agent_distro_and_no_lab_settings(
    fixture: str, agent: str, distro: str
) -> None:
    found = import_bundle(FIXTURES / f"{fixture}.zip", redact=False).case
    vm = found.vms[0]
    assert vm.agent == agent and found.observed is not None
    assert distro in (found.observed.distro or "")
    assert vm.waagent_conf == {}  # the lab image's marked changes are not the customer's
    assert found.observed.wireserver is not None and found.observed.incarnation is not None
    assert found.evidence["vms[0].agent"].startswith("var/log/waagent.log:")
    assert [e.type for e in vm.extensions] == [HANDLER]


def test_agent_stopped_bundle_is_the_fault_and_the_setting() -> None:
    found = import_bundle(FIXTURES / "agent-stopped.zip", redact=False).case
    assert [f.fault for f in found.faults] == ["agent-stopped"]
    assert found.vms[0].agent_service == "stopped"
    assert found.evidence["faults[0]"].startswith("diagnose --bundle: agent-stopped")


def test_extension_update_failed_bundle_names_its_error_lines() -> None:
    found = import_bundle(FIXTURES / "extension-update-failed.zip", redact=False).case
    assert "extension-update-failed" in [f.fault for f in found.faults]
    assert found.observed is not None
    assert any("Failed to download the extension package" in e.text for e in found.observed.errors)
    assert all(e.line >= 1 and e.file for e in found.observed.errors)


def customer_bundle(conf: str, extra: dict[str, str] | None = None) -> bytes:
    members = {
        "var/log/waagent.log": (
            "2026-11-30T01:00:00.000000Z INFO Daemon Daemon Azure Linux Agent Version: 2.9.1.1\n"
            "2026-11-30T01:00:02.000000Z INFO ExtHandler ExtHandler Wire server endpoint:"
            "168.63.129.16\n"
            "2026-11-30T01:00:03.000000Z INFO ExtHandler ExtHandler Agent WALinuxAgent-2.9.1.1 "
            "is running as the goal state agent\n"
            "2026-11-30T01:00:04.000000Z INFO ExtHandler ExtHandler Hostname record does not "
            "exist, creating [/var/lib/waagent/published_hostname] with hostname [contoso-db01]\n"
            "2026-11-30T02:00:00.000000Z ERROR ExtHandler ExtHandler Event: name=Microsoft.Azure"
            ".RecoveryServices.VMSnapshotLinux, op=Download, message=HTTP GET https://contoso"
            "store.blob.core.windows.net/x?sv=1&sig=SECRETSIG123 failed from 10.1.2.4\n"
        ),
        "etc/os-release": 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\n',
        "etc/hostname": "contoso-db01\n",
        "etc/waagent.conf": conf,
        f"var/lib/waagent/{HANDLER}-1.0.9225.0/config/HandlerState": "Enabled",
        f"var/lib/waagent/{HANDLER}-1.0.9225.0/status/3.status": json.dumps(
            [{"status": {"status": "error", "code": 76}}]
        ),
        f"var/lib/waagent/{HANDLER}-1.0.9225.0/config/3.settings": json.dumps(
            {"runtimeSettings": [{"handlerSettings": {"protectedSettings": "MIIBsecretbase64=="}}]}
        ),
        "var/lib/waagent/GoalState.7.xml": "<GoalState/>",
        "results.txt": "2026-11-30T03:00:00Z INFO Starting log collection\n",
        **(extra or {}),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


CUSTOMER_CONF = (
    "Provisioning.Agent=auto\nExtensions.Enabled=y\nLogs.Verbose=y\n"
    "HttpProxy.Host=proxy.contoso.com\nHttpProxy.Port=3128\nResourceDisk.Format=y\n"
)


def test_a_customers_bundle_imports_with_provenance(tmp_path: Path) -> None:
    path = tmp_path / "contoso-db01-logs.zip"
    path.write_bytes(customer_bundle(CUSTOMER_CONF))
    found = import_bundle(path, redact=False).case
    vm = found.vms[0]
    assert vm.agent == "2.7.3.0"  # no lab image of 2.9.1.1: the nearest below
    assert found.observed is not None and found.observed.agent == "2.9.1.1"
    assert "built as 2.7.3.0" in found.evidence["vms[0].agent"]
    assert found.observed.distro == "Ubuntu 22.04.4 LTS"
    assert found.observed.wireserver == "168.63.129.16" and found.observed.incarnation == 7
    assert vm.waagent_conf == {"Logs.Verbose": "y", "Provisioning.Agent": "auto"}
    assert (
        found.evidence["vms[0].waagent_conf.Logs.Verbose"] == "etc/waagent.conf:3: Logs.Verbose=y"
    )
    assert vm.proxy is not None and vm.proxy.http == "http://proxy.contoso.com:3128"
    assert vm.proxy.where == "agent"
    assert vm.extensions[0].status_code == 76 and vm.extensions[0].version == "1.0.9225.0"
    assert found.name == "contoso-db01-logs"


def test_system_proxy_from_etc_environment(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    extra = {"etc/environment": 'http_proxy="http://10.0.0.9:8080"\n'}
    path.write_bytes(customer_bundle("Extensions.Enabled=y\n", extra))
    vm = import_bundle(path, redact=False).case.vms[0]
    assert vm.proxy is not None and (vm.proxy.http, vm.proxy.where) == (
        "http://10.0.0.9:8080",
        "system",
    )


def test_redacted_import_leaves_no_customer_name_secret_or_address(tmp_path: Path) -> None:
    path = tmp_path / "contoso-db01-logs.zip"
    path.write_bytes(customer_bundle(CUSTOMER_CONF))
    output = tmp_path / "case.yaml"
    result = CliRunner().invoke(cli, ["case", "import", str(path), "-o", str(output)], obj={})
    assert result.exit_code == 0, result.output
    text = output.read_text()
    for leak in ("contoso", "SECRETSIG123", "10.1.2.4", "MIIBsecret"):
        assert leak not in text, leak
    assert "168.63.129.16" in text and "name: case" in text and "bundle: bundle-1.zip" in text
    found = load_case(output)
    assert found.source is not None and found.source.redacted
    assert found.vms[0].proxy is not None and found.vms[0].proxy.http.startswith("http://host-")
    report = (tmp_path / "case.yaml.redaction.txt").read_text()
    assert "redacted host" in report and "redacted sas" in report
