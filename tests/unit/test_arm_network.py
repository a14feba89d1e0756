"""Microsoft.Network in the ARM twin (lab/platform/arm/network*.py).

The twin is served over real TLS on 127.0.0.1 and driven by the unmodified
``azure-mgmt-network`` client, so a document the SDK cannot read or an LRO it cannot
follow fails here. The host firewall is a fake that keeps an ``iptables -S DOCKER-USER``
listing and records every argv; the fabric and Docker are test_armtwin's fakes.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network.models import NetworkSecurityGroup, SecurityRule
from werkzeug.test import Client

from lab.azure_sdk import StaticTokenCredential
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.main import build_server, tls_context
from lab.platform.arm.network_firewall import (
    FirewallError,
    HostIptables,
    block_specs,
    enforce,
    lab_networks,
)
from lab.platform.arm.network_rules import parse_rule
from lab.platform.arm.network_store import NsgStore
from lab.platform.host_rules import bridge_name, rule_comment
from lab.provision.tls import write_lab_tls
from tests.unit.test_armtwin import RG, ROSTER, SUB, TOKEN, FakeFabric, FakePower
from tests.unit.test_nsg_fakes import FakeFirewall, lab_rules, render

LAB = ROSTER.lab
BRIDGE = bridge_name(LAB)
NSG = "vm1-nsg"
STORAGE = f"{ROSTER.storage_ip}/32"
NET = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network"
API = "api-version=2026-03-01"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Lab:
    network: NetworkManagementClient
    firewall: FakeFirewall
    twin: ArmTwin
    state: Path
    endpoint: str = ""
    ca_file: Path = Path()


def serve_twin(tmp_path: Path, firewall: FakeFirewall, state: Path) -> Iterator[Lab]:
    files = write_lab_tls("unit", tmp_path / "tls")
    twin = ArmTwin(
        FakeFabric(),
        FakePower(),
        TOKEN,
        retry_after_seconds=0,
        nsg_store=NsgStore(state),
        nsg_firewall=lambda lab: firewall,
    )
    server = build_server(twin, 0, tls_context(files.server_cert, files.server_key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"https://127.0.0.1:{server.socket.getsockname()[1]}"
    client = NetworkManagementClient(
        StaticTokenCredential(TOKEN),
        SUB,
        base_url=endpoint,
        connection_verify=str(files.ca_cert),
        polling_interval=0.02,
    )
    yield Lab(client, firewall, twin, state, endpoint, files.ca_cert)
    client.close()
    server.shutdown()
    server.server_close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from serve_twin(
        tmp_path, FakeFirewall(labs=("other", LAB)), tmp_path / "state" / "network.json"
    )


def deny_storage(priority: int = 100, **extra: object) -> SecurityRule:
    fields: dict[str, object] = {
        "protocol": "*",
        "source_address_prefix": "*",
        "source_port_range": "*",
        "destination_address_prefix": "Storage",
        "destination_port_range": "*",
        "access": "Deny",
        "priority": priority,
        "direction": "Outbound",
        **extra,
    }
    return SecurityRule(**fields)  # type: ignore[arg-type]


def _create(lab: Lab, name: str, rule: SecurityRule) -> SecurityRule:
    poller = lab.network.security_rules.begin_create_or_update(RG, NSG, name, rule)
    result: SecurityRule = poller.result(timeout=10)
    return result


def _code(exc: pytest.ExceptionInfo[HttpResponseError]) -> str:
    return str(exc.value.error.code if exc.value.error else "")


# --------------------------------------------------------------------------- NICs, NSGs


def test_nics_one_per_vm_with_their_address_subnet_and_nsg(lab: Lab) -> None:
    nics = list(lab.network.network_interfaces.list(RG))
    assert [n.name for n in nics] == ["vm1VMNic", "vm2VMNic", "vm3VMNic"]
    assert [n.name for n in lab.network.network_interfaces.list_all()] == [n.name for n in nics]
    nic = lab.network.network_interfaces.get(RG, "VM1VMNIC")  # names compare without case
    assert nic.id == f"{NET}/networkInterfaces/vm1VMNic"
    props = nic.properties
    assert props is not None and props.provisioning_state == "Succeeded"
    config = props.ip_configurations[0]  # type: ignore[index]
    assert config.name == "ipconfigvm1"
    assert config.properties.private_ip_address == "10.77.0.11"  # type: ignore[union-attr]
    assert config.properties.primary is True  # type: ignore[union-attr]
    subnet = config.properties.subnet  # type: ignore[union-attr]
    assert subnet is not None and subnet.id == f"{NET}/virtualNetworks/unit-vnet/subnets/default"
    assert props.network_security_group.id == f"{NET}/networkSecurityGroups/vm1-nsg"  # type: ignore[union-attr]
    vm = props.virtual_machine
    assert (
        vm is not None
        and vm.id is not None
        and vm.id.endswith("/providers/Microsoft.Compute/virtualMachines/vm1")
    )
    assert props.mac_address == "02-42-0A-4D-00-0B"
    with pytest.raises(ResourceNotFoundError):
        lab.network.network_interfaces.get(RG, "nope")


def test_nsg_has_azures_default_rules_and_links_its_nic(lab: Lab) -> None:
    nsg = lab.network.network_security_groups.get(RG, NSG)
    props = nsg.properties
    assert props is not None and props.security_rules == []
    defaults = {
        (r.name, r.properties.direction, r.properties.priority, r.properties.access)  # type: ignore[union-attr]
        for r in props.default_security_rules or []
    }
    assert defaults == {
        ("AllowVnetInBound", "Inbound", 65000, "Allow"),
        ("AllowAzureLoadBalancerInBound", "Inbound", 65001, "Allow"),
        ("DenyAllInBound", "Inbound", 65500, "Deny"),
        ("AllowVnetOutBound", "Outbound", 65000, "Allow"),
        ("AllowInternetOutBound", "Outbound", 65001, "Allow"),
        ("DenyAllOutBound", "Outbound", 65500, "Deny"),
    }
    assert [n.id for n in props.network_interfaces or []] == [f"{NET}/networkInterfaces/vm1VMNic"]
    assert [n.name for n in lab.network.network_security_groups.list(RG)] == [
        "vm1-nsg",
        "vm2-nsg",
        "vm3-nsg",
    ]
    assert len(list(lab.network.network_security_groups.list_all())) == 3
    default = lab.network.default_security_rules.get(RG, NSG, "allowinternetoutbound")
    assert default.properties.destination_address_prefix == "Internet"  # type: ignore[union-attr]
    assert len(list(lab.network.default_security_rules.list(RG, NSG))) == 6


# --------------------------------------------------------------------------- security rules


def test_a_deny_storage_rule_is_created_enforced_listed_and_deleted(lab: Lab) -> None:
    created = _create(lab, "DenyStorage", deny_storage())
    assert created.properties.provisioning_state == "Succeeded"  # type: ignore[union-attr]
    assert created.id == f"{NET}/networkSecurityGroups/vm1-nsg/securityRules/DenyStorage"
    rules = lab.firewall.nsg_lines()
    assert len(rules) == 2
    exempt, drop = (shlex.split(line) for line in rules)
    assert exempt[exempt.index("-d") + 1] == f"{ROSTER.fabric_ip}/32" and exempt[-1] == "RETURN"
    assert drop[drop.index("-s") + 1] == "10.77.0.11/32"
    assert drop[drop.index("-d") + 1] == STORAGE and drop[-1] == "DROP"
    assert drop[drop.index("-i") + 1] == BRIDGE and "-p" not in drop
    comments = [drop[i + 1] for i, t in enumerate(drop) if t == "--comment"]
    assert comments[0] == rule_comment(LAB)  # first, for teardown
    assert comments[1].startswith("snaplab.nsg vm=vm1 rule=DenyStorage priority=100 access=Deny")
    # below the lab's own rules (guard jump, IMDS, DHCP), above the chain's final RETURN
    ours = [i for i, line in enumerate(lab.firewall.lines) if rule_comment(LAB) in line]
    assert lab.firewall.lines.index(rules[0]) == ours[-len(rules) - 1] + 1
    listed = list(lab.network.security_rules.list(RG, NSG))
    assert [(r.name, r.properties.priority) for r in listed] == [("DenyStorage", 100)]  # type: ignore[union-attr]
    nsg = lab.network.network_security_groups.get(RG, NSG)
    assert [r.name for r in nsg.properties.security_rules or []] == ["DenyStorage"]  # type: ignore[union-attr]

    lab.network.security_rules.begin_delete(RG, NSG, "denystorage").result(timeout=10)
    assert lab.firewall.nsg_lines() == []
    with pytest.raises(ResourceNotFoundError):
        lab.network.security_rules.get(RG, NSG, "DenyStorage")
    lab.network.security_rules.begin_delete(RG, NSG, "DenyStorage").result(timeout=10)  # 204


def test_updating_a_rule_rewrites_the_block(lab: Lab) -> None:
    _create(lab, "Web", deny_storage(300))
    before = lab.firewall.nsg_lines()
    updated = _create(lab, "web", deny_storage(310, access="Allow"))
    assert updated.name == "Web" and updated.properties.priority == 310  # type: ignore[union-attr]
    after = lab.firewall.nsg_lines()
    assert len(after) == 2 and after != before and after[1].endswith("-j RETURN")
    assert "priority=310 access=Allow" in after[1]


def test_rules_are_enforced_lowest_priority_number_first(lab: Lab) -> None:
    _create(lab, "DenyAll", deny_storage(4000, destination_address_prefix="*"))
    _create(lab, "AllowStorage", deny_storage(100, access="Allow"))
    names = [line.split("rule=")[1].split()[0] for line in lab.firewall.nsg_lines()[1:]]
    assert names == ["AllowStorage", "DenyAll"]
    deny_all = shlex.split(lab.firewall.nsg_lines()[-1])
    assert "-d" not in deny_all  # "*" covers everything; the fabric is exempted above


def test_inbound_rules_are_recorded_not_enforced(lab: Lab) -> None:
    _create(lab, "DenySsh", deny_storage(100, direction="Inbound", destination_port_range="22"))
    assert lab.network.security_rules.get(RG, NSG, "DenySsh").properties.direction == "Inbound"  # type: ignore[union-attr]
    assert lab.firewall.nsg_lines() == []


def test_ports_and_protocols(lab: Lab) -> None:
    _create(
        lab,
        "Ports",
        deny_storage(
            100,
            destination_port_range=None,
            destination_port_ranges=["443", "10000-10002"],
        ),
    )
    specs = [shlex.split(line) for line in lab.firewall.nsg_lines()[1:]]
    assert [(s[s.index("-p") + 1], s[s.index("--dport") + 1]) for s in specs] == [
        ("tcp", "443"),
        ("tcp", "10000:10002"),
        ("udp", "443"),
        ("udp", "10000:10002"),
    ]


def test_two_quick_changes_to_one_nsg_both_land(lab: Lab) -> None:
    first = lab.network.security_rules.begin_create_or_update(RG, NSG, "A", deny_storage(200))
    second = lab.network.security_rules.begin_create_or_update(RG, NSG, "B", deny_storage(201))
    first.result(timeout=10)
    second.result(timeout=10)
    assert {r.name for r in lab.network.security_rules.list(RG, NSG)} == {"A", "B"}
    assert len(lab.firewall.nsg_lines()) == 3


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        (deny_storage(50), "SecurityRuleInvalidPriority"),
        (deny_storage(4097), "SecurityRuleInvalidPriority"),
        (deny_storage(100, destination_port_range="70000"), "SecurityRuleInvalidPortRange"),
        (deny_storage(100, destination_port_range="20-10"), "SecurityRuleInvalidPortRange"),
        (deny_storage(100, destination_port_range="any"), "SecurityRuleInvalidPortRange"),
        (deny_storage(100, destination_address_prefix="any"), "SecurityRuleInvalidAddressPrefix"),
        (deny_storage(100, protocol="Sctp"), "SecurityRuleParameterContainsUnsupportedValue"),
        (deny_storage(100, access="Block"), "SecurityRuleParameterContainsUnsupportedValue"),
        (
            deny_storage(
                100,
                destination_address_prefix=None,
                destination_address_prefixes=["10.0.0.0/8", "Storage"],
            ),
            "SecurityRuleParameterContainsUnsupportedValue",
        ),
        (deny_storage(100, direction=None), "InvalidRequestFormat"),
    ],
)
def test_bad_rules_are_refused_with_azures_codes(lab: Lab, rule: SecurityRule, code: str) -> None:
    with pytest.raises(HttpResponseError) as caught:
        _create(lab, "Bad", rule)
    assert caught.value.status_code == 400 and _code(caught) == code
    assert list(lab.network.security_rules.list(RG, NSG)) == []
    assert lab.firewall.argv == []


def test_a_priority_is_unique_per_direction(lab: Lab) -> None:
    _create(lab, "First", deny_storage(200))
    with pytest.raises(HttpResponseError) as caught:
        _create(lab, "Second", deny_storage(200))
    assert _code(caught) == "SecurityRuleConflict"
    assert "Rules cannot have the same Priority and Direction" in str(caught.value)
    _create(lab, "Inbound200", deny_storage(200, direction="Inbound"))  # other direction: fine


def test_a_bad_rule_name_is_refused(lab: Lab) -> None:
    with pytest.raises(HttpResponseError) as caught:
        _create(lab, "-dash-first", deny_storage())
    assert _code(caught) == "InvalidResourceName"


def test_a_refused_firewall_change_fails_the_operation_and_keeps_the_nsg(lab: Lab) -> None:
    lab.firewall.fail = True
    with pytest.raises(HttpResponseError) as caught:
        _create(lab, "DenyStorage", deny_storage())
    assert "host firewall" in str(caught.value)
    assert list(lab.network.security_rules.list(RG, NSG)) == []
    assert lab.firewall.nsg_lines() == []


def test_an_nsg_put_replaces_its_rules(lab: Lab) -> None:
    _create(lab, "Old", deny_storage(300))
    nsg = lab.network.network_security_groups.get(RG, NSG)
    assert nsg.properties is not None
    new = SecurityRule(name="New", properties=deny_storage(150).properties)
    nsg.properties.security_rules = [new]
    done = lab.network.network_security_groups.begin_create_or_update(RG, NSG, nsg).result(
        timeout=10
    )
    assert isinstance(done, NetworkSecurityGroup)
    assert [r.name for r in lab.network.security_rules.list(RG, NSG)] == ["New"]
    assert ["rule=New" in line for line in lab.firewall.nsg_lines()] == [False, True]


def test_nsgs_are_the_vms_own(lab: Lab) -> None:
    with pytest.raises(HttpResponseError) as caught:
        lab.network.network_security_groups.begin_delete(RG, NSG).result(timeout=10)
    assert _code(caught) == "InUseNetworkSecurityGroupCannotBeDeleted"
    other = NetworkSecurityGroup(location=ROSTER.location)
    with pytest.raises(HttpResponseError) as caught:
        lab.network.network_security_groups.begin_create_or_update(RG, "mine", other).result()
    assert _code(caught) == "OperationNotAllowed"
    with pytest.raises(ResourceNotFoundError):
        lab.network.security_rules.list(RG, "nope-nsg").next()


def test_rules_survive_a_restart_of_the_twin(tmp_path: Path) -> None:
    state = tmp_path / "network.json"
    firewall = FakeFirewall(labs=("other", LAB))
    first = serve_twin(tmp_path / "a", firewall, state)
    _create(next(first), "DenyStorage", deny_storage())
    next(first, None)
    second = serve_twin(tmp_path / "b", firewall, state)
    again = next(second)
    assert [r.name for r in again.network.security_rules.list(RG, NSG)] == ["DenyStorage"]
    next(second, None)


def test_unknown_api_versions_are_refused_as_arm_does(lab: Lab) -> None:
    client = Client(lab.twin)
    response = client.get(f"{NET}/networkSecurityGroups/{NSG}?api-version=2099-01-01", headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "NoRegisteredProviderFound"  # type: ignore[index]
    assert client.get(f"{NET}/networkSecurityGroups/{NSG}?{API}").status_code == 401


# --------------------------------------------------------------------------- enforcement


def _rule(**props: object) -> object:
    body = {
        "protocol": "*",
        "sourceAddressPrefix": "*",
        "sourcePortRange": "*",
        "destinationAddressPrefix": "*",
        "destinationPortRange": "*",
        "access": "Deny",
        "priority": 100,
        "direction": "Outbound",
        **props,
    }
    return parse_rule("r", {"properties": body}, "r")


@pytest.mark.parametrize(
    ("prefix", "covered"),
    [
        ("*", None),
        ("Storage", [STORAGE]),
        (f"storage.{ROSTER.location}", [STORAGE]),
        ("Storage.WestEurope", []),
        ("AzureCloud", [STORAGE]),
        ("Internet", [STORAGE]),
        ("VirtualNetwork", ["10.77.0.11/32", "10.77.0.12/32", "10.77.0.13/32"]),
        ("AzureMonitor", []),
        ("10.77.0.0/24", ["10.77.0.0/24"]),
        ("2001:db8::/32", []),
    ],
)
def test_what_a_prefix_covers_in_the_lab(prefix: str, covered: list[str] | None) -> None:
    networks = lab_networks(prefix, ROSTER)
    assert (None if networks is None else [str(n) for n in networks]) == covered


def test_a_rule_whose_source_is_not_the_vm_is_not_enforced_for_it() -> None:
    other = _rule(sourceAddressPrefix="10.77.0.12")
    vm1 = ROSTER.guests[0]
    assert block_specs([other], vm1, ROSTER, "g") == []  # type: ignore[list-item]
    assert len(block_specs([_rule()], vm1, ROSTER, "g")) == 2  # type: ignore[list-item]


def test_enforce_leaves_other_vms_and_labs_alone_and_is_idempotent() -> None:
    firewall = FakeFirewall(labs=("other", LAB))
    rules = [_rule(destinationAddressPrefix="Storage")]
    assert enforce(firewall, ROSTER, "vm2", rules, "g1")  # type: ignore[arg-type]
    assert enforce(firewall, ROSTER, "vm1", rules, "g1")  # type: ignore[arg-type]
    before = list(firewall.lines)
    assert not enforce(firewall, ROSTER, "vm1", rules, "g2")  # type: ignore[arg-type]
    assert firewall.lines == before
    assert enforce(firewall, ROSTER, "vm1", [], "g3")
    assert firewall.nsg_lines("vm1") == [] and len(firewall.nsg_lines("vm2")) == 2
    assert all(render(rule) in firewall.lines for rule in lab_rules("other"))


def _iptables_run(holder: str, calls: list[list[str]]) -> Callable[..., CompletedProcess[str]]:
    """iptables as a host where the ``holder`` backend holds the lab's rules."""

    def run(argv: Sequence[str]) -> CompletedProcess[str]:
        calls.append(list(argv))
        held = argv[0] == f"/usr/sbin/{holder}"
        lines = [f"-A DOCKER-USER {render(r)}" for r in lab_rules(LAB)] if held else []
        return CompletedProcess(list(argv), 0, "\n".join(["-N DOCKER-USER", *lines]), "")

    return run


def test_host_iptables_picks_the_backend_that_holds_the_lab(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/sbin/{name}")
    tables = tmp_path / "ip_tables_names"
    tables.write_text("filter\n")
    calls: list[list[str]] = []
    wall = HostIptables(LAB, _iptables_run("iptables-legacy", calls), tables)
    wall.insert(4, ["-s", "10.77.0.11/32", "-j", "DROP"])
    assert calls[-1] == [
        "/usr/sbin/iptables-legacy", "-w", "-I", "DOCKER-USER", "4", "-s", "10.77.0.11/32",
        "-j", "DROP",
    ]  # fmt: skip


def test_host_iptables_never_wakes_the_legacy_tables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Listing with iptables-legacy makes the kernel create its tables: only a host that
    has them already is asked."""
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/sbin/{name}")
    calls: list[list[str]] = []
    wall = HostIptables(LAB, _iptables_run("iptables-nft", calls), tmp_path / "absent")
    assert "DOCKER-USER" in wall.listing()
    assert {c[0] for c in calls} == {"/usr/sbin/iptables-nft"}


def test_host_iptables_without_the_labs_rules_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/sbin/{name}")
    calls: list[list[str]] = []
    wall = HostIptables("gone", _iptables_run("iptables-nft", calls), tmp_path / "absent")
    with pytest.raises(FirewallError, match="is the lab up"):
        wall.insert(1, ["-j", "DROP"])
    assert all(c[2] == "-S" for c in calls)  # nothing was changed
    denied = CompletedProcess([], 4, "", "Permission denied (you must be root)")
    with pytest.raises(FirewallError, match="NET_ADMIN"):
        HostIptables(LAB, lambda argv: denied, tmp_path / "absent").listing()


def test_a_twin_without_a_host_firewall_touches_none(tmp_path: Path) -> None:
    """The default (tests, a twin run by hand): rules kept, enforced nowhere."""
    twin = ArmTwin(FakeFabric(), FakePower(), TOKEN, retry_after_seconds=0)
    client = Client(twin)
    url = f"{NET}/networkSecurityGroups/{NSG}/securityRules/R?{API}"
    body = deny_storage().as_dict()
    assert client.put(url, json=body, headers=AUTH).status_code == 201
    _wait(lambda: client.get(url, headers=AUTH).json["properties"]["provisioningState"]  # type: ignore[index]
          == "Succeeded")  # fmt: skip
    detached = twin.network._detached[LAB]
    assert len(detached.rules) == 2 and detached.rules[1][-1] == "DROP"


def test_the_wire_as_az_follows_it(lab: Lab) -> None:
    """``az network nsg rule create``: 201 + Azure-AsyncOperation under Microsoft.Network,
    then the rule; ``delete``: 202, poll, then ``Location`` answers 204."""
    client = Client(lab.twin)
    url = f"{NET}/networkSecurityGroups/{NSG}/securityRules/AzRule?api-version=2024-07-01"
    body = {
        "properties": {
            "access": "Deny",
            "destinationAddressPrefix": "Storage",
            "destinationAddressPrefixes": [],
            "destinationPortRange": "*",
            "direction": "Outbound",
            "priority": 120,
            "protocol": "*",
            "sourceAddressPrefix": "*",
            "sourcePortRange": "*",
        }
    }
    created = client.put(url, json=body, headers=AUTH)
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.json["properties"]["provisioningState"] == "Updating"  # type: ignore[index]
    monitor = created.headers["Azure-AsyncOperation"]
    assert "/providers/Microsoft.Network/locations/snaplab-local/operations/" in monitor
    path = monitor.split("://", 1)[1].split("/", 1)[1]
    _wait(lambda: client.get("/" + path, headers=AUTH).json["status"] == "Succeeded")  # type: ignore[index]
    assert client.get(url, headers=AUTH).json["properties"]["provisioningState"] == "Succeeded"  # type: ignore[index]
    deleted = client.delete(url, headers=AUTH)
    assert deleted.status_code == 202
    location = deleted.headers["Location"].split("://", 1)[1].split("/", 1)[1]
    _wait(lambda: client.get("/" + location, headers=AUTH).status_code == 204)
    assert client.get(url, headers=AUTH).status_code == 404


def _wait(done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
