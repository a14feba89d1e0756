"""blocked-egress's platform steps, run as the runner runs them (``python -c``, the lab's
exports in the environment) against a twin served over TLS with its host firewall faked:
they find the VM's NSG from the VM, list it, and clear the block either way (the deny
rule deleted, or an allow put in front of a broad deny)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.runbook import Step, parse_runbook
from tests.unit.test_arm_network import LAB, NSG, RG, SUB, TOKEN, Lab, deny_storage, serve_twin
from tests.unit.test_nsg_fakes import FakeFirewall

RUNBOOK = Path(__file__).resolve().parents[2] / "scenarios" / "blocked-egress" / "runbook.md"


def platform_steps() -> list[Step]:
    steps = parse_runbook(RUNBOOK.read_text(), str(RUNBOOK))
    return [s for s in steps if s.kind == "platform"]


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Lab]:
    yield from serve_twin(tmp_path, FakeFirewall(labs=(LAB,)), tmp_path / "nsg.json")


def run_step(twin: Lab, step: Step) -> subprocess.CompletedProcess[str]:
    endpoint, ca = twin.endpoint, twin.ca_file
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_"))},
        "ARM_ENDPOINT": endpoint,
        "IDENTITY_ENDPOINT": f"{endpoint}{IDENTITY_PATH}",
        "IDENTITY_HEADER": TOKEN,
        "AZURE_SUBSCRIPTION_ID": SUB,
        "AZURE_RESOURCE_GROUP": RG,
        "REQUESTS_CA_BUNDLE": str(ca),
        "SSL_CERT_FILE": str(ca),
        "SNAPLAB_VM": "vm1",
    }
    return subprocess.run(
        [sys.executable, "-c", step.code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_runbook_has_a_listing_and_a_fix_on_the_platform() -> None:
    steps = platform_steps()
    assert [s.fix for s in steps] == [False, True]
    assert all(s.language == "python" for s in steps)


def test_listing_then_fix_deletes_the_deny_rule(twin: Lab, tmp_path: Path) -> None:
    listing, fix = platform_steps()
    twin.network.security_rules.begin_create_or_update(
        RG, NSG, "DenyStorageOutbound", deny_storage(200)
    ).result(timeout=10)
    shown = run_step(twin, listing)
    assert shown.returncode == 0, shown.stderr
    assert "vm1: NIC vm1VMNic, NSG vm1-nsg" in shown.stdout
    assert "Outbound Deny  *    to Storage:*  DenyStorageOutbound" in shown.stdout
    assert "SecurityRule" not in shown.stdout  # Azure's words, not the SDK's enum names
    assert "AllowInternetOutBound" in shown.stdout
    done = run_step(twin, fix)
    assert done.returncode == 0, done.stderr
    assert "deleting DenyStorageOutbound" in done.stdout
    assert list(twin.network.security_rules.list(RG, NSG)) == []
    assert twin.firewall.nsg_lines() == []


def test_fix_puts_an_allow_before_a_broad_deny(twin: Lab, tmp_path: Path) -> None:
    fix = platform_steps()[1]
    broad = deny_storage(150, destination_address_prefix="*")
    twin.network.security_rules.begin_create_or_update(RG, NSG, "DenyAllOut", broad).result(
        timeout=10
    )
    done = run_step(twin, fix)
    assert done.returncode == 0, done.stderr
    rules = {r.name: r.priority for r in twin.network.security_rules.list(RG, NSG)}
    assert rules == {"DenyAllOut": 150, "AllowStorageOutbound": 149}


def test_fix_without_a_deny_rule_says_so(twin: Lab, tmp_path: Path) -> None:
    done = run_step(twin, platform_steps()[1])
    assert done.returncode != 0 and "does not block storage" in done.stderr
