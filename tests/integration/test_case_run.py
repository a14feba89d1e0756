"""Customer cases on real labs: ``snaplab case run`` of the two-fault example matches its
symptom; ``case up`` builds settings (a waagent.conf line, an NSG rule, a policy) and
``case export`` writes the case back as built."""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest
from click.testing import CliRunner

from lab import nsg_api
from lab.cases.build import load_buildable
from lab.cases.load import parse_case
from lab.cli import cli
from lab.faults import FaultTarget
from lab.provision import lab as labs
from lab.provision.vault import LabVault

pytestmark = pytest.mark.integration

PREFIX = f"cau{os.getpid() % 100000}"
CASES = Path(__file__).resolve().parents[2] / "cases"

SETTINGS_CASE = """\
format: 1
name: settings-only
vms:
  - name: vm1
    agent: 2.7.3.0
    waagent_conf: {Logs.Verbose: "y"}
    proxy: {http: "http://proxy.snaplab.internal:3128", where: agent}
nsg:
  rules:
    - {name: AllowHttpsOut, access: Allow, priority: 300, destination: Internet, ports: 443}
backup:
  policy: {name: NightlyPolicy, time: "02:00"}
symptom: {status: Completed}
"""


def invoke(*args: str) -> tuple[int, str]:
    """Exit code and stdout (progress and notes go to stderr)."""
    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.stdout


def test_two_fault_case_runs_and_matches(docker_client: docker.DockerClient) -> None:
    lab = f"{PREFIX}a"
    path = CASES / "stale-agent-behind-proxy.yaml"
    assert [f.fault for f in load_buildable(path).faults] == ["stale-agent", "blocked-egress-proxy"]
    try:
        code, output = invoke("case", "run", str(path), "--lab", lab, "--json")
    finally:
        labs.down(docker_client, lab)
    document = json.loads(output)
    assert document["result"] == "match", document["differences"]
    assert code == 0
    assert document["outcome"]["error_code"] == "UserErrorGuestAgentStatusUnavailable"
    assert document["lab"] == lab and document["kept"] is False


def test_case_up_builds_settings_and_export_writes_them_back(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    lab = f"{PREFIX}b"
    path = tmp_path / "case.yaml"
    path.write_text(SETTINGS_CASE, encoding="utf-8")
    try:
        code, output = invoke("case", "up", str(path), "--lab", lab)
        assert code == 0, output
        assert lab in labs.lab_names(docker_client)
        roster = labs.roster_of(docker_client, lab)
        conf = FaultTarget(docker_client, roster, "vm1").run(
            "grep -E '^(Logs.Verbose|HttpProxy.Host|HttpProxy.Port)=' /etc/waagent.conf"
        )
        assert sorted(conf.split()) == [
            "HttpProxy.Host=proxy.snaplab.internal",
            "HttpProxy.Port=3128",
            "Logs.Verbose=y",
        ]
        network, group = nsg_api.connect(docker_client, lab)
        rules = {r.name: r for r in nsg_api.rules(nsg_api.find(network, group, "vm1"))}
        assert nsg_api.destination_ports(rules["AllowHttpsOut"]) == "443"
        policy = LabVault.of(docker_client, lab).policy("NightlyPolicy")
        assert policy["vms"] == ["vm1"]
        out = tmp_path / "exported.yaml"
        code, output = invoke("case", "export", "--lab", lab, "--no-redact", "-o", str(out))
        assert code == 0, output
        assert parse_case(out.read_text(encoding="utf-8")) == parse_case(SETTINGS_CASE)
    finally:
        labs.down(docker_client, lab)
    assert lab not in labs.lab_names(docker_client)
