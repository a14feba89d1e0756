"""``snaplab nsg`` and the blocked-egress fault: thin clients of the twin's
Microsoft.Network through ``azure-mgmt-network``.

A real twin is served over TLS (test_arm_network's fixture) with the host firewall
faked; only the lab lookup (Docker) is replaced. What the commands print, their
``--json``, and bad input as one ``Error:`` line with exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lab import cli_nsg, nsg_api
from lab.cli import SnaplabGroup
from lab.errors import LabNotFound
from lab.faults import fault_by_id
from lab.faults.base import FaultError, FaultTarget
from tests.unit.test_arm_network import LAB, RG, ROSTER, Lab, serve_twin
from tests.unit.test_nsg_fakes import FakeFirewall


@click.group(cls=SnaplabGroup)
def root() -> None:
    """Stands in for ``snaplab`` (which registers the same group)."""


root.add_command(cli_nsg.nsg)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    served = serve_twin(tmp_path, FakeFirewall(labs=("other", LAB)), tmp_path / "nsg.json")
    twin = next(served)

    def resolve(_client: object, name: str | None) -> str:
        if name not in (None, LAB):
            raise LabNotFound(f"no lab named {name!r} (running: {LAB})")
        return LAB

    monkeypatch.setattr(cli_nsg.engines, "connect_for_lab", lambda lab: object())
    monkeypatch.setattr(cli_nsg.labs, "resolve_lab", resolve)
    monkeypatch.setattr(nsg_api, "connect", lambda _client, _lab: (twin.network, RG))
    yield twin
    next(served, None)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(root, ["nsg", *args], obj={})
    return result.exit_code, result.output


def test_an_nsg_without_rules_of_its_own_shows_azures_defaults(lab: Lab) -> None:
    code, out = run("list", "vm1")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "vm1: network security group vm1-nsg"
    assert lines[1].split() == [
        "Priority", "Name", "Direction", "Access", "Protocol", "Source", "Destination", "Port"
    ]  # fmt: skip
    assert "no rules of its own" in lines[2]
    assert [line.split()[:2] for line in lines[3:]] == [
        ["65000", "AllowVnetInBound"],
        ["65001", "AllowAzureLoadBalancerInBound"],
        ["65500", "DenyAllInBound"],
        ["65000", "AllowVnetOutBound"],
        ["65001", "AllowInternetOutBound"],
        ["65500", "DenyAllOutBound"],
    ]


def test_deny_allow_list_and_remove(lab: Lab) -> None:
    code, out = run("deny-storage", "vm1")
    assert code == 0, out
    assert out == (
        "vm1: NSG vm1-nsg now has rule DenyStorageOutbound (priority 200, Outbound Deny * "
        "from * to Storage)\n"
    )
    assert len(lab.firewall.nsg_lines()) == 2  # held in the host firewall on return
    assert run("allow-storage", "vm1", "--lab", LAB)[0] == 0

    code, out = run("list", "vm1")
    rows = [line.split() for line in out.splitlines()[2:4]]
    assert rows == [
        ["100", "AllowStorageOutbound", "Outbound", "Allow", "*", "*", "Storage", "*"],
        ["200", "DenyStorageOutbound", "Outbound", "Deny", "*", "*", "Storage", "*"],
    ]
    code, out = run("remove", "vm1", "denystorageoutbound")
    assert code == 0 and out.startswith("vm1: removed rule DenyStorageOutbound (priority 200")
    names = [r.name for r in lab.network.security_rules.list(RG, "vm1-nsg")]
    assert names == ["AllowStorageOutbound"]


def test_list_json_is_what_a_runbook_filters(lab: Lab) -> None:
    run("deny-storage", "vm1", "--name", "Block-Storage", "--priority", "300")
    code, out = run("list", "vm1", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["rules"] == [
        {
            "name": "Block-Storage",
            "priority": 300,
            "direction": "Outbound",
            "access": "Deny",
            "protocol": "*",
            "source": "*",
            "destination": "Storage",
            "destination_port": "*",
        }
    ]
    assert (payload["lab"], payload["vm"], payload["nsg"]) == (LAB, "vm1", "vm1-nsg")
    assert len(payload["default_rules"]) == 6


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["list", "vm9"], "VM 'vm9': no network interface belongs to it"),
        (["list", "vm1", "--lab", "nolab"], "no lab named 'nolab'"),
        (["remove", "vm1", "Nope"], "vm1's NSG vm1-nsg has no rule named 'Nope'"),
        (["deny-storage", "vm1", "--name", "bad name"], "(InvalidResourceName)"),
        (["deny-storage", "vm1", "--priority", "50"], "50 is not in the range 100<=x<=4096"),
        (["remove", "vm1"], "Missing argument 'NAME'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(lab: Lab, args: list[str], fragment: str) -> None:
    code, out = run(*args)
    assert code == 2, out
    assert fragment in out
    assert "Traceback" not in out
    assert [line for line in out.splitlines() if line.startswith("Error:")] != []


def test_a_taken_priority_is_azures_conflict(lab: Lab) -> None:
    assert run("deny-storage", "vm1")[0] == 0
    assert run("deny-storage", "vm1")[0] == 0  # the same rule again: an update, as on Azure
    code, out = run("allow-storage", "vm1", "--priority", "200")
    assert code == 2 and "Error: (SecurityRuleConflict) Security rule" in out


def _target(params: dict[str, object] | None = None) -> FaultTarget:
    return FaultTarget(client=None, roster=ROSTER, vm="vm1", params=params or {})  # type: ignore[arg-type]


def test_blocked_egress_creates_its_deny_rule_through_the_api(lab: Lab) -> None:
    fault_by_id("blocked-egress").inject(_target())
    rule = lab.network.security_rules.get(RG, "vm1-nsg", "DenyStorageOutbound")
    props = rule.properties
    assert props is not None
    assert (props.direction, props.access, props.priority) == ("Outbound", "Deny", 200)
    assert props.destination_address_prefix == "Storage"
    assert props.provisioning_state == "Succeeded"
    assert any("-j DROP" in line for line in lab.firewall.nsg_lines())
    fault_by_id("blocked-egress").inject(_target({"name": "NoBlobs", "priority": 4000}))
    names = [r.name for r in lab.network.security_rules.list(RG, "vm1-nsg")]
    assert sorted(names) == ["DenyStorageOutbound", "NoBlobs"]
    with pytest.raises(FaultError, match=r"cannot add NSG rule Other.*SecurityRuleConflict"):
        fault_by_id("blocked-egress").inject(_target({"name": "Other", "priority": 200}))
    with pytest.raises(FaultError):
        fault_by_id("blocked-egress").inject(_target({"priority": "200"}))
