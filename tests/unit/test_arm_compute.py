"""Microsoft.Compute in the ARM twin: VM documents, list_all, deallocate, extensions as ARM
models them, and Run Command, driven with the unmodified ``azure-mgmt-compute`` over real
TLS (and Werkzeug's test client where a synchronous refusal is the point).

The fabric is a fake that plays the fabric and the VM agent at once: when the twin
enables a handler, the "agent" answers the new sequence number the way the mode says —
``healthy`` (the handler's success status, with a Run Command's output), ``disabled``
(an agent from 2.10 on with ``Extensions.Enabled=n``: its error status), ``stopped`` (no
report at all), ``busy`` (the agent keeps reporting, but never for the extension, as
2.7.3.0 with extensions disabled) or ``stuck`` (the extension stays transitioning).
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import ComputeManagementClient
from werkzeug.test import Client

from lab.azure_sdk import StaticTokenCredential
from lab.platform.arm import naming
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.compute_extensions import choose_version
from lab.platform.arm.compute_run_command import RunCommandInput
from lab.platform.arm.compute_sizes import NoMatchingSize, size_for, vm_size_for
from lab.platform.arm.fabric import (
    AgentReport,
    ExtensionReport,
    FabricError,
    FabricVm,
    GoalStateHandler,
    PublishedHandler,
)
from lab.platform.arm.main import build_server, tls_context
from lab.platform.arm.power import PowerAction
from lab.platform.roster import GuestEntry, Roster
from lab.provision.tls import write_lab_tls

TOKEN = "lab-token-compute-0123456789"
SUB = "22222222-3333-4444-5555-666666666666"
RG = "snaplab-compute"
API = "api-version=2026-04-01"
VMS = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
SNAPSHOT = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
RUN_COMMAND = "Microsoft.CPlat.Core.RunCommandLinux"
DISABLED = (
    "Extension will not be processed since extension processing is disabled. To enable "
    "extension processing, set Extensions.Enabled=y in '/etc/waagent.conf'"
)

ROSTER = Roster(
    lab="cmp",
    subnet="10.78.0.0/24",
    fabric_ip="10.78.0.2",
    storage_ip="10.78.0.3",
    guests=(
        GuestEntry("vm1", "10.78.0.11", "02:42:0a:4e:00:0b", "2.7.3.0", "snaplab-cmp-vm1"),
        GuestEntry("vm2", "10.78.0.12", "02:42:0a:4e:00:0c", "2.12.0.2", "snaplab-cmp-vm2"),
    ),
    subscription_id=SUB,
    resource_group=RG,
    location="snaplab-local",
)


def _agent(tick: int) -> AgentReport:
    return AgentReport(ready=True, version="2.7.3.0", last_report=f"2026-12-07T08:00:{tick:02d}Z")


@dataclass
class AgentFabric:
    """The fabric's control API and, behind it, a VM agent in one of four modes."""

    mode: str = "healthy"
    output: str = "hello\nLinux\n"
    versions: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            SNAPSHOT: ("1.0.91.0", "1.0.92.0"),
            RUN_COMMAND: ("1.0.5",),
        }
    )
    power: dict[str, str] = field(
        default_factory=lambda: {g.name: "running" for g in ROSTER.guests}
    )
    reports: dict[str, FabricVm] = field(
        default_factory=lambda: {
            g.name: FabricVm(name=g.name, agent=_agent(0)) for g in ROSTER.guests
        }
    )
    goal: dict[str, dict[str, GoalStateHandler]] = field(default_factory=dict)
    published: list[tuple[str, str, str, Mapping[str, object], Mapping[str, object] | None]] = (
        field(default_factory=list)
    )
    tick: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- FabricClient

    def roster(self) -> Roster:
        return ROSTER

    def vm(self, name: str) -> FabricVm | None:
        with self.lock:
            report = self.reports.get(name)
        return replace(report, power_state=self.power.get(name)) if report else None

    def set_power_state(self, vm: str, state: str) -> None:
        self.power[vm] = state

    def report_halt(self, vm: str) -> bool:
        return True

    def uninstall_extension(self, vm: str, handler: str) -> str | None:
        with self.lock:
            report = self.reports[vm]
            kept = tuple(e for e in report.extensions if e.name != handler)
            self.reports[vm] = replace(report, extensions=kept)
            self.goal.get(vm, {}).pop(handler.lower(), None)
        return "9"

    def handler_versions(self, handler: str) -> tuple[str, ...] | None:
        return self.versions.get(handler)

    def goal_state_handlers(self, vm: str) -> tuple[GoalStateHandler, ...]:
        return tuple(self.goal.get(vm, {}).values())

    def enable_handler(
        self,
        vm: str,
        handler: str,
        version: str,
        public: Mapping[str, object],
        protected: Mapping[str, object] | None,
    ) -> PublishedHandler:
        if handler not in self.versions:
            raise FabricError("no such handler")
        current = self.goal.setdefault(vm, {}).get(handler.lower())
        seq = 0 if current is None else current.seq_no + 1
        self.goal[vm][handler.lower()] = GoalStateHandler(handler, version, "enabled", seq, public)
        self.published.append((vm, handler, version, public, protected))
        threading.Thread(target=self._agent_answers, args=(vm, handler, version, seq)).start()
        return PublishedHandler(handler, version, seq, str(10 + seq))

    # -- the agent

    def _agent_answers(self, vm: str, handler: str, version: str, seq: int) -> None:
        time.sleep(0.05)
        if self.mode == "stopped":
            return
        if self.mode == "busy":
            for _ in range(40):  # reports keep coming, never about the extension
                self._report(vm, None)
                time.sleep(0.05)
            return
        if self.mode == "stuck":
            status = ExtensionReport(
                handler,
                version,
                "Ready",
                "transitioning",
                "0",
                "Enable in progress",
                sequence_number=seq,
            )
            self._report(vm, status)
            return
        if self.mode == "disabled":
            status = ExtensionReport(
                handler, version, "NotReady", "error", "-1", DISABLED, sequence_number=seq
            )
        else:
            message = f"Enable succeeded: \n[stdout]\n{self.output}\n[stderr]\n"
            status = ExtensionReport(
                handler, version, "Ready", "success", "0", message, sequence_number=seq
            )
        self._report(vm, status)

    def _report(self, vm: str, status: ExtensionReport | None) -> None:
        with self.lock:
            self.tick += 1
            report = self.reports[vm]
            extensions = tuple(
                e for e in report.extensions if status is None or e.name != status.name
            )
            if status is not None:
                extensions += (status,)
            self.reports[vm] = replace(report, agent=_agent(self.tick % 60), extensions=extensions)


@dataclass
class FakePower:
    calls: list[tuple[str, PowerAction]] = field(default_factory=list)

    def act(self, container: str, action: PowerAction) -> None:
        self.calls.append((container, action))


def _twin(fabric: AgentFabric, power: FakePower) -> ArmTwin:
    twin = ArmTwin(
        fabric,
        power,
        TOKEN,
        retry_after_seconds=0,
        extension_timeout=lambda: 1.5,
        extension_poll_seconds=0.02,
    )
    twin.compute.extensions.agent_wait = lambda: 0.6
    return twin


@dataclass
class Lab:
    fabric: AgentFabric
    power: FakePower
    compute: ComputeManagementClient


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    files = write_lab_tls("cmp", tmp_path / "tls")
    fabric, power = AgentFabric(), FakePower()
    server = build_server(_twin(fabric, power), 0, tls_context(files.server_cert, files.server_key))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"https://127.0.0.1:{server.socket.getsockname()[1]}"
    compute = ComputeManagementClient(
        StaticTokenCredential(TOKEN),
        SUB,
        base_url=endpoint,
        connection_verify=str(files.ca_cert),
        polling_interval=0.05,  # the twin says Retry-After: 0, which the SDK reads as none
    )
    yield Lab(fabric, power, compute)
    compute.close()
    server.shutdown()
    server.server_close()


@pytest.fixture
def client() -> tuple[Client, AgentFabric]:
    fabric = AgentFabric(mode="stopped")
    return Client(_twin(fabric, FakePower())), fabric


def _unzip_script(protected: Mapping[str, object] | None) -> str:
    assert protected is not None
    return gzip.decompress(base64.b64decode(str(protected["script"]))).decode()


def _error(exc: pytest.ExceptionInfo[HttpResponseError]) -> tuple[str, str]:
    error = exc.value.error
    assert error is not None
    return str(error.code), str(error.message)


# --------------------------------------------------------------------------- VM documents


def test_the_vm_document_says_what_the_guest_is(lab: Lab) -> None:
    vm = lab.compute.virtual_machines.get(RG, "vm1")
    assert vm.hardware_profile.vm_size == "Standard_B1s"
    image = vm.storage_profile.image_reference
    assert (image.publisher, image.offer, image.sku, image.version) == (
        "Debian",
        "debian-12",
        "12-gen2",
        "latest",
    )
    disk = vm.storage_profile.os_disk
    assert disk.name == naming.os_disk_name(ROSTER, "vm1")
    assert disk.managed_disk.id == naming.disk_id(ROSTER, disk.name)
    assert disk.managed_disk.storage_account_type == "Premium_LRS"
    assert disk.disk_size_gb == 30
    assert disk.os_type == "Linux"
    assert vm.storage_profile.data_disks == []
    nic = vm.network_profile.network_interfaces[0]
    assert nic.id == naming.nic_id(ROSTER, "vm1")
    assert nic.primary is True
    assert vm.os_profile.computer_name == "vm1"
    assert vm.os_profile.admin_username == "azureuser"
    assert vm.os_profile.linux_configuration.disable_password_authentication is True
    assert vm.os_profile.linux_configuration.provision_vm_agent is True
    assert vm.provisioning_state == "Succeeded"


def test_a_trixie_guest_shows_debian_13(lab: Lab) -> None:
    image = lab.compute.virtual_machines.get(RG, "vm2").storage_profile.image_reference
    assert (image.offer, image.sku) == ("debian-13", "13-gen2")


def test_sizes_are_named_after_real_limits() -> None:
    assert size_for(1, 1024).name == "Standard_B1s"
    assert size_for(1, 512).name == "Standard_B1ls"
    assert size_for(2, 4096).name == "Standard_B2s"
    assert size_for(2, 8192).name == "Standard_B2ms"  # before Standard_D2s_v3's same pair
    entry = GuestEntry("vm9", "10.0.0.9", "02:00:00:00:00:09", "2.7.3.0", "c", 2.0, 1024)
    assert vm_size_for(entry).name == "Standard_B2ats_v2"
    with pytest.raises(NoMatchingSize, match="3 vCPU and 1000 MiB"):
        size_for(3, 1000)
    with pytest.raises(NoMatchingSize):
        size_for(1.5, 1024)


def test_a_roster_without_limits_reads_as_the_labs_guests() -> None:
    raw = json.loads(ROSTER.to_json())
    for entry in raw["guests"]:
        del entry["cpus"], entry["memory_mib"]
    roster = Roster.from_json(json.dumps(raw))
    assert vm_size_for(roster.guests[0]).name == "Standard_B1s"


def test_list_all_lists_the_subscriptions_vms(lab: Lab) -> None:
    vms = list(lab.compute.virtual_machines.list_all())
    assert [vm.name for vm in vms] == ["vm1", "vm2"]
    assert vms[0].network_profile.network_interfaces[0].id == naming.nic_id(ROSTER, "vm1")


def test_list_all_with_status_only_carries_instance_views(lab: Lab) -> None:
    vms = list(lab.compute.virtual_machines.list_all(status_only="true"))
    assert all(vm.instance_view is not None for vm in vms)


def test_list_all_of_another_subscription_is_404(client: tuple[Client, AgentFabric]) -> None:
    other = "/subscriptions/99999999-0000-0000-0000-000000000000"
    answer = client[0].get(
        f"{other}/providers/Microsoft.Compute/virtualMachines?{API}", headers=AUTH
    )
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "SubscriptionNotFound"


# --------------------------------------------------------------------------- power


def test_deallocate_then_start(lab: Lab) -> None:
    lab.compute.virtual_machines.begin_deallocate(RG, "vm1").result()
    assert lab.fabric.power["vm1"] == "deallocated"
    assert lab.power.calls == [("snaplab-cmp-vm1", PowerAction.DEALLOCATE)]
    view = lab.compute.virtual_machines.instance_view(RG, "vm1")
    power = [s for s in view.statuses if s.code.startswith("PowerState/")]
    assert [(s.code, s.display_status) for s in power] == [
        ("PowerState/deallocated", "VM deallocated")
    ]
    lab.compute.virtual_machines.begin_start(RG, "vm1").result()
    assert lab.fabric.power["vm1"] == "running"
    assert lab.power.calls[-1] == ("snaplab-cmp-vm1", PowerAction.START)


def test_restart_needs_a_running_vm(lab: Lab) -> None:
    lab.fabric.power["vm1"] = "deallocated"
    with pytest.raises(HttpResponseError) as raised:
        lab.compute.virtual_machines.begin_restart(RG, "vm1")
    assert _error(raised) == (
        "OperationNotAllowed",
        "The operation requires the VM to be running (or set to run).",
    )
    assert lab.power.calls == []


# --------------------------------------------------------------------------- Run Command


def test_run_command_returns_the_scripts_output(lab: Lab) -> None:
    poller = lab.compute.virtual_machines.begin_run_command(
        RG, "vm1", {"commandId": "RunShellScript", "script": ["echo hello", "uname -s"]}
    )
    result = poller.result()
    [status] = result.value
    assert status.code == "ProvisioningState/succeeded"
    assert status.level == "Info"
    assert status.display_status == "Provisioning succeeded"
    assert status.message == "Enable succeeded: \n[stdout]\nhello\nLinux\n\n[stderr]\n"
    [(vm, handler, version, public, protected)] = lab.fabric.published
    assert (vm, handler, version, dict(public)) == ("vm1", RUN_COMMAND, "1.0.5", {})
    assert _unzip_script(protected) == "echo hello\nuname -s\n"


def test_run_command_parameters_are_positional(lab: Lab) -> None:
    lab.compute.virtual_machines.begin_run_command(
        RG,
        "vm1",
        {
            "commandId": "RunShellScript",
            "script": ["echo $1 $2"],
            "parameters": [{"name": "arg1", "value": "hello"}, {"name": "arg2", "value": "a b"}],
        },
    ).result()
    script = _unzip_script(lab.fabric.published[0][4])
    assert script == "set -- hello 'a b'\necho $1 $2\n"


def test_a_second_run_command_gets_the_next_sequence_number(lab: Lab) -> None:
    for line in ("echo one", "echo two"):
        lab.compute.virtual_machines.begin_run_command(
            RG, "vm1", {"commandId": "RunShellScript", "script": [line]}
        ).result()
    assert [h.seq_no for h in lab.fabric.goal_state_handlers("vm1")] == [1]


def test_run_command_on_a_vm_whose_agent_is_stopped(lab: Lab) -> None:
    lab.fabric.mode = "stopped"
    started = time.monotonic()
    poller = lab.compute.virtual_machines.begin_run_command(
        RG, "vm1", {"commandId": "RunShellScript", "script": ["echo hello"]}
    )
    with pytest.raises(HttpResponseError) as raised:
        poller.result()
    code, message = _error(raised)
    assert code == "VMAgentStatusCommunicationError"
    assert message.startswith(
        "VM 'vm1' has not reported status for VM agent or extensions. Verify that the OS is "
        "up and healthy, the VM has a running VM agent"
    )
    assert 0.6 <= time.monotonic() - started < 1.5  # the agent's window, not the timeout


def test_run_command_with_extensions_disabled(lab: Lab) -> None:
    lab.fabric.mode = "disabled"
    poller = lab.compute.virtual_machines.begin_run_command(
        RG, "vm1", {"commandId": "RunShellScript", "script": ["echo hello"]}
    )
    with pytest.raises(HttpResponseError) as raised:
        poller.result()
    code, message = _error(raised)
    assert code == "VMExtensionProvisioningError"
    assert message.startswith(
        "VM has reported a failure when processing extension 'RunCommandLinux' (publisher "
        "'Microsoft.CPlat.Core' and type 'RunCommandLinux'). Error message: 'Extension will "
        "not be processed since extension processing is disabled."
    )


def test_run_command_the_agent_ignores(lab: Lab) -> None:
    lab.fabric.mode = "busy"  # statuses keep coming, none for the extension
    poller = lab.compute.virtual_machines.begin_run_command(
        RG, "vm1", {"commandId": "RunShellScript", "script": ["echo hello"]}
    )
    with pytest.raises(HttpResponseError) as raised:
        poller.result()
    assert _error(raised)[0] == "VMAgentStatusCommunicationError"


def test_run_command_that_never_finishes_times_out(lab: Lab) -> None:
    lab.fabric.mode = "stuck"
    poller = lab.compute.virtual_machines.begin_run_command(
        RG, "vm1", {"commandId": "RunShellScript", "script": ["sleep 1000"]}
    )
    with pytest.raises(HttpResponseError) as raised:
        poller.result()
    code, message = _error(raised)
    assert code == "VMExtensionProvisioningTimeout"
    assert message.startswith(
        "Provisioning of VM extension RunCommandLinux has timed out. Extension provisioning "
        'has taken too long to complete. The extension last reported "Enable in progress".'
    )


@pytest.mark.parametrize("state", ["stopped", "deallocated"])
def test_run_command_needs_a_running_vm(client: tuple[Client, AgentFabric], state: str) -> None:
    twin, fabric = client
    fabric.power["vm1"] = state
    body = json.dumps({"commandId": "RunShellScript", "script": ["true"]})
    answer = twin.post(f"{VMS}/vm1/runCommand?{API}", headers=AUTH, data=body)
    assert answer.status_code == 409
    assert answer.get_json()["error"] == {
        "code": "OperationNotAllowed",
        "message": "The operation requires the VM to be running (or set to run).",
    }
    assert fabric.published == []


def test_a_second_run_command_while_one_runs_is_a_conflict(
    client: tuple[Client, AgentFabric],
) -> None:
    twin, _ = client  # the agent is stopped: the first one keeps running
    body = json.dumps({"commandId": "RunShellScript", "script": ["true"]})
    first = twin.post(f"{VMS}/vm1/runCommand?{API}", headers=AUTH, data=body)
    assert first.status_code == 202
    assert first.headers["Location"] and first.headers["Azure-AsyncOperation"]
    second = twin.post(f"{VMS}/vm1/runCommand?{API}", headers=AUTH, data=body)
    assert second.status_code == 409
    assert second.get_json()["error"]["code"] == "Conflict"
    assert "Run command extension execution is in progress" in second.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"script": ["true"]}, "'commandId' is missing"),
        ({"commandId": "RunPowerShellScript", "script": ["dir"]}, "not valid for a Linux"),
        ({"commandId": "RunShellScript", "script": "true"}, "list of strings"),
        ({"commandId": "RunShellScript", "parameters": [{"name": "x"}]}, "'value'"),
    ],
)
def test_bad_run_command_input_is_400(
    client: tuple[Client, AgentFabric], body: dict[str, object], fragment: str
) -> None:
    answer = client[0].post(f"{VMS}/vm1/runCommand?{API}", headers=AUTH, data=json.dumps(body))
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "InvalidParameter"
    assert fragment in error["message"]


def test_run_command_input_shapes() -> None:
    command = RunCommandInput.from_body({"commandId": "ifconfig"})
    assert command.shell_script() == "ifconfig\n"
    command = RunCommandInput.from_body({"commandId": "runshellscript", "script": ["a", "b"]})
    assert command.command_id == "RunShellScript"
    assert _unzip_script(command.protected_settings()) == "a\nb\n"


# --------------------------------------------------------------------------- extensions


def _snapshot_extension(**properties: object) -> dict[str, object]:
    return {
        "location": "snaplab-local",
        "properties": {
            "publisher": "Microsoft.Azure.RecoveryServices",
            "type": "VMSnapshotLinux",
            "typeHandlerVersion": "1.0",
            "autoUpgradeMinorVersion": True,
            "settings": {"locale": "en-us"},
            **properties,
        },
    }


def test_create_an_extension_and_read_it_back(lab: Lab) -> None:
    poller = lab.compute.virtual_machine_extensions.begin_create_or_update(
        RG, "vm1", "mySnapshot", _snapshot_extension()
    )
    ext = poller.result()
    assert ext.name == "mySnapshot"
    assert ext.provisioning_state == "Succeeded"
    assert ext.publisher == "Microsoft.Azure.RecoveryServices"
    assert ext.properties.type == "VMSnapshotLinux"
    assert ext.settings == {"locale": "en-us"}
    [(vm, handler, version, public, protected)] = lab.fabric.published
    assert (vm, handler, version) == ("vm1", SNAPSHOT, "1.0.92.0")  # the newest 1.x
    assert dict(public) == {"locale": "en-us"} and protected is None
    names = [e.name for e in lab.compute.virtual_machine_extensions.list(RG, "vm1").value]
    assert names == ["mySnapshot"]
    again = lab.compute.virtual_machine_extensions.get(
        RG, "vm1", "mySnapshot", expand="instanceView"
    )
    assert again.instance_view.statuses[0].code == "ProvisioningState/succeeded"


def test_an_extension_the_agent_fails(lab: Lab) -> None:
    lab.fabric.mode = "disabled"
    poller = lab.compute.virtual_machine_extensions.begin_create_or_update(
        RG, "vm1", "VMSnapshotLinux", _snapshot_extension()
    )
    with pytest.raises(HttpResponseError) as raised:
        poller.result()
    assert _error(raised)[0] == "VMExtensionProvisioningError"


def test_a_goal_state_extension_is_listed_before_the_agent_reports(lab: Lab) -> None:
    lab.fabric.goal["vm1"] = {
        SNAPSHOT.lower(): GoalStateHandler(SNAPSHOT, "1.0.92.0", "enabled", 3, {"a": 1})
    }
    [ext] = lab.compute.virtual_machine_extensions.list(RG, "vm1").value
    assert (ext.name, ext.provisioning_state, ext.settings) == (
        "VMSnapshotLinux",
        "Updating",
        {"a": 1},
    )
    lab.fabric.goal["vm1"][SNAPSHOT.lower()] = GoalStateHandler(
        SNAPSHOT, "1.0.92.0", "uninstall", 3, {}
    )
    assert lab.compute.virtual_machine_extensions.list(RG, "vm1").value == []


def test_an_extension_the_platform_does_not_offer(lab: Lab) -> None:
    body = _snapshot_extension(publisher="Microsoft.Azure.Extensions", type="CustomScript")
    with pytest.raises(ResourceNotFoundError) as raised:
        lab.compute.virtual_machine_extensions.begin_create_or_update(RG, "vm1", "cse", body)
    assert raised.value.error is not None and raised.value.error.code == "ArtifactNotFound"


def test_an_extension_version_the_platform_does_not_offer(lab: Lab) -> None:
    body = _snapshot_extension(typeHandlerVersion="2.0")
    with pytest.raises(ResourceNotFoundError) as raised:
        lab.compute.virtual_machine_extensions.begin_create_or_update(RG, "vm1", "s", body)
    assert raised.value.error is not None and raised.value.error.code == "ArtifactVersionNotFound"


def test_extensions_cannot_change_on_a_stopped_vm(client: tuple[Client, AgentFabric]) -> None:
    twin, fabric = client
    fabric.power["vm1"] = "stopped"
    body = json.dumps(_snapshot_extension())
    answer = twin.put(f"{VMS}/vm1/extensions/VMSnapshotLinux?{API}", headers=AUTH, data=body)
    assert answer.status_code == 409
    assert answer.get_json()["error"]["message"] == (
        "Cannot modify extensions in the VM when the VM is not running."
    )


def test_a_new_extension_is_201_with_its_operation(client: tuple[Client, AgentFabric]) -> None:
    twin, _ = client
    body = json.dumps(_snapshot_extension())
    answer = twin.put(f"{VMS}/vm1/extensions/VMSnapshotLinux?{API}", headers=AUTH, data=body)
    assert answer.status_code == 201
    assert "/providers/Microsoft.Compute/locations/" in answer.headers["Azure-AsyncOperation"]
    assert answer.get_json()["properties"]["provisioningState"] == "Creating"


@pytest.mark.parametrize(
    ("requested", "auto", "chosen"),
    [
        ("1.0", True, "1.2.3"),
        ("1.0", False, "1.0.92.0"),
        ("1.0.91.0", True, "1.0.91.0"),
        ("", True, "1.2.3"),
        ("2.0", True, None),
    ],
)
def test_crp_picks_the_newest_version_that_satisfies_the_request(
    requested: str, auto: bool, chosen: str | None
) -> None:
    assert choose_version(("1.0.91.0", "1.0.92.0", "1.2.3"), requested, auto) == chosen
