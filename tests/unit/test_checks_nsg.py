"""The NSG check (checks/nsg.py, checks/on_platform/nsg_egress.py): Azure's evaluation
over rules read with ``azure-mgmt-network``, on canned rules and against a served twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.mgmt.network.models import SecurityRule

from checks.fakes import FAKE_ROSTER, fake_context, healthy_host, healthy_platform
from checks.nsg import Endpoint, Flow, NsgRule, first_match, from_sdk, vm_nsg_rules
from checks.on_platform.nsg_egress import nsg_egress
from tests.unit.test_arm_network import LAB, RG, ROSTER, Lab, deny_storage, serve_twin
from tests.unit.test_nsg_fakes import FakeFirewall

VM = Endpoint("10.213.9.10", frozenset({"virtualnetwork"}))
STORAGE = Endpoint("10.213.9.3", frozenset({"storage", "azurecloud", "internet"}))
TO_STORAGE = Flow(VM, STORAGE, "tcp", 10000)

DEFAULTS = [
    NsgRule("AllowVnetOutBound", 65000, "Outbound", True, "*", ("VirtualNetwork",),
            ("VirtualNetwork",), default=True),
    NsgRule("AllowInternetOutBound", 65001, "Outbound", True, "*", ("*",), ("Internet",),
            default=True),
    NsgRule("DenyAllOutBound", 65500, "Outbound", False, default=True),
]  # fmt: skip


def deny(priority: int = 200, dest: str = "Storage", port: str = "*", proto: str = "*") -> NsgRule:
    return NsgRule("Deny", priority, "Outbound", False, proto, ("*",), (dest,), (port,))


def test_defaults_alone_allow_storage_as_internet() -> None:
    decided = first_match(DEFAULTS, TO_STORAGE)
    assert decided is not None and decided.name == "AllowInternetOutBound"


@pytest.mark.parametrize(
    ("rule", "blocks"),
    [
        (deny(), True),
        (deny(dest="AzureCloud"), True),
        (deny(dest="*"), True),
        (deny(dest="10.213.9.0/24"), True),
        (deny(dest="10.213.9.3"), True),
        (deny(port="10000"), True),
        (deny(port="9000-10010", proto="Tcp"), True),
        (deny(port="443"), False),
        (deny(proto="Udp"), False),
        (deny(dest="VirtualNetwork"), False),
        (deny(dest="Sql"), False),
        (NsgRule("In", 100, "Inbound", False), False),
    ],
)
def test_the_deciding_rule(rule: NsgRule, blocks: bool) -> None:
    decided = first_match([rule, *DEFAULTS], TO_STORAGE)
    assert decided is not None and decided.allow is not blocks


def test_a_lower_number_wins() -> None:
    allow = NsgRule("AllowStorage", 100, "Outbound", True, "*", ("*",), ("Storage",))
    decided = first_match([deny(200), allow, *DEFAULTS], TO_STORAGE)
    assert decided is allow


def test_sdk_rules_in_either_form() -> None:
    single = from_sdk(SecurityRule(name="r", properties=deny_storage(300).properties))
    assert (single.priority, single.allow, single.destinations) == (300, False, ("Storage",))
    listed = from_sdk(
        SecurityRule(
            name="r",
            properties=deny_storage(
                310,
                destination_address_prefix=None,
                destination_address_prefixes=["10.213.9.3/32", "10.0.0.0/8"],
                destination_port_range=None,
                destination_port_ranges=["443", "10000"],
            ).properties,
        )
    )
    assert listed.destinations == ("10.213.9.3/32", "10.0.0.0/8")
    assert listed.ports == ("443", "10000") and listed.matches(TO_STORAGE)


def test_the_check_fails_on_a_deny_and_names_the_rule() -> None:
    platform = healthy_platform()
    platform.rules = [deny(), *DEFAULTS]
    result = nsg_egress(fake_context(healthy_host(), platform))
    assert not result.passed
    assert "denied by Deny (priority 200, Outbound Deny * from * to Storage)" in result.detail
    assert FAKE_ROSTER.storage_ip in result.detail


def test_the_check_passes_on_defaults_and_on_unrelated_denies() -> None:
    platform = healthy_platform()
    assert nsg_egress(fake_context(healthy_host(), platform)).passed  # no rules read
    platform.rules = [deny(port="443"), *DEFAULTS]
    result = nsg_egress(fake_context(healthy_host(), platform))
    assert result.passed and "allowed by AllowInternetOutBound (default rule 65001" in result.detail


def test_a_regional_storage_tag_counts() -> None:
    platform = healthy_platform()
    platform.rules = [deny(dest=f"Storage.{FAKE_ROSTER.location}"), *DEFAULTS]
    assert not nsg_egress(fake_context(healthy_host(), platform)).passed
    platform.rules = [deny(dest="Storage.WestEurope"), *DEFAULTS]
    assert nsg_egress(fake_context(healthy_host(), platform)).passed


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Lab]:
    yield from serve_twin(tmp_path, FakeFirewall(labs=(LAB,)), tmp_path / "nsg.json")


def test_the_check_reads_the_vms_nsg_from_the_twin(twin: Lab) -> None:
    vm1, vm2 = ROSTER.guests[0], ROSTER.guests[1]
    flow = Flow(
        Endpoint(vm1.ip, frozenset({"virtualnetwork"})),
        Endpoint(ROSTER.storage_ip, frozenset({"storage", "azurecloud", "internet"})),
        "tcp",
        10000,
    )
    rules = vm_nsg_rules(twin.network, RG, "vm1")
    assert [r.name for r in rules if r.default][-1] == "DenyAllOutBound"
    assert first_match(rules, flow).allow  # type: ignore[union-attr]
    poller = twin.network.security_rules.begin_create_or_update(RG, "vm1-nsg", "D", deny_storage())
    poller.result(timeout=10)
    decided = first_match(vm_nsg_rules(twin.network, RG, "vm1"), flow)
    assert decided is not None and decided.name == "D" and not decided.allow
    assert [r.name for r in vm_nsg_rules(twin.network, RG, vm2.name) if not r.default] == []
