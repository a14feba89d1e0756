"""The twin's Microsoft.Support provider (lab/platform/arm/support*.py).

End to end without a lab: the unmodified ``azure-mgmt-support`` talks over TLS to the
twin, whose :class:`HttpFabricClient` talks over HTTP to the real control API and its
artifact store (a good VMSnapshotLinux package and, where a test says so, a damaged
newer one). Microsoft's answer is scheduled by the provider; the tests hold it and run
it when they choose, so the delay is checked without waiting for it.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.support import MicrosoftSupport
from azure.mgmt.support import models as m
from werkzeug.test import Client

from lab.azure_sdk import StaticTokenCredential
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.fabric import FabricError, HttpFabricClient
from lab.platform.arm.main import build_server, tls_context
from lab.platform.arm.managed_identity import API_VERSION as IDENTITY_API
from lab.platform.arm.managed_identity import HEADER as IDENTITY_HEADER
from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from lab.platform.arm.naming import vm_resource_id
from lab.platform.arm.support_engineer import HANDLER, answer_case, named_versions
from lab.platform.control import ControlApp
from lab.platform.guest_state import CHANNEL_HOSTPLUGIN, Fabric
from lab.platform.roster import Roster
from lab.platform.timescale import SUPPORT_ROLLBACK_RESPONSE
from lab.provision.tls import write_lab_tls
from lab.runbook import StepPlace, run_steps
from lab.scenario import load_scenario
from tests.unit.fabric_samples import make_fabric, vm_status
from tests.unit.recovery_services_rig import serve_http
from tests.unit.test_armtwin import FakePower

TOKEN = "lab-token-support-0123456789"
API = "2024-04-01"


@dataclass
class HeldAnswers:
    """The provider's schedule: keeps each answer (and its delay) until the test runs it."""

    pending: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    def __call__(self, delay: float, work: Callable[[], None]) -> None:
        self.pending.append((delay, work))

    def run_all(self) -> None:
        while self.pending:
            self.pending.pop(0)[1]()


@dataclass
class Desk:
    support: MicrosoftSupport
    roster: Roster
    fabric: Fabric
    answers: HeldAnswers
    twin: ArmTwin

    def vm_id(self, vm: str = "vm1") -> str:
        return vm_resource_id(self.roster, vm)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    fabric, _ = make_fabric()
    fabric.artifacts.publish_extension(HANDLER, "1.0.92.0", b"PK a whole package")
    control, control_url = serve_http(ControlApp(fabric))
    client = HttpFabricClient(control_url)
    twin = ArmTwin(client, FakePower(), TOKEN, publisher=client)
    answers = HeldAnswers()
    assert twin.support is not None
    twin.support._schedule = answers
    files = write_lab_tls("unit", tmp_path / "tls")
    server = build_server(twin, 0, tls_context(files.server_cert, files.server_key))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"https://127.0.0.1:{server.socket.getsockname()[1]}"
    support = MicrosoftSupport(
        StaticTokenCredential(TOKEN),
        fabric.roster.subscription_id,
        base_url=endpoint,
        connection_verify=str(files.ca_cert),
        polling_interval=0,
    )
    yield Desk(support, fabric.roster, fabric, answers, twin)
    support.close()
    for srv in (server, control):
        srv.shutdown()
        srv.server_close()


def _pick(desk: Desk, service_name: str, words: str) -> tuple[str, str]:
    """(serviceId, problemClassificationId) found by listing, as the runbook does."""
    service = next(s for s in desk.support.services.list() if s.display_name == service_name)
    assert service.name is not None and service.id is not None
    pc = next(
        p
        for p in desk.support.problem_classifications.list(service.name)
        if words in (p.display_name or "").lower()
    )
    assert pc.id is not None
    return service.id, pc.id


def _ticket(desk: Desk, description: str, resource_id: str | None = None) -> m.SupportTicketDetails:
    service_id, pc_id = _pick(desk, "Azure Backup", "extension")
    return m.SupportTicketDetails(
        title="VMSnapshotLinux update fails on vm1",
        description=description,
        service_id=service_id,
        problem_classification_id=pc_id,
        severity="moderate",
        advanced_diagnostic_consent="Yes",
        contact_details=m.ContactProfile(
            first_name="Backup",
            last_name="Engineer",
            preferred_contact_method="email",
            primary_email_address="engineer@contoso.com",
            preferred_time_zone="UTC",
            country="USA",
            preferred_support_language="en-US",
        ),
        technical_ticket_details=m.TechnicalTicketDetails(
            resource_id=resource_id if resource_id is not None else desk.vm_id()
        ),
    )


def _open(desk: Desk, ticket: m.SupportTicketDetails) -> tuple[str, m.SupportTicketDetails]:
    name = f"case-{uuid.uuid4().hex[:12]}"
    filed = desk.support.support_tickets.begin_create(name, ticket).result()
    return name, filed


def _broken(desk: Desk, version: str = "1.0.93.0") -> None:
    desk.fabric.artifacts.publish_broken(HANDLER, version, "corrupt")


AGENT_ERROR = (
    "Backups fail with GuestAgentSnapshotTaskStatusError. The agent reports for "
    "Microsoft.Azure.RecoveryServices.VMSnapshotLinux 1.0.93.0: Failed to download "
    "artifacts (code 1001), File is not a zip file. VM agent 2.7.3.0."
)

# --------------------------------------------------------------------------- catalog


def test_the_catalog_lists_backup_and_linux_vm_services_with_their_classifications(
    desk: Desk,
) -> None:
    services = {s.display_name: s for s in desk.support.services.list()}
    assert {"Azure Backup", "Virtual Machine running Linux", "Billing"} <= set(services)
    linux = services["Virtual Machine running Linux"]
    assert linux.name == "cddd3eb5-1830-b494-44fd-782f691479dc"  # Azure's own id
    assert linux.id == f"/providers/Microsoft.Support/services/{linux.name}"
    assert linux.type == "Microsoft.Support/services"
    assert "MICROSOFT.COMPUTE/VIRTUALMACHINES" in (linux.resource_types or [])
    backup = services["Azure Backup"]
    assert backup.name is not None
    assert desk.support.services.get(backup.name).display_name == "Azure Backup"
    pcs = list(desk.support.problem_classifications.list(backup.name))
    assert any("extension" in (p.display_name or "").lower() for p in pcs)
    assert all(p.id and p.id.startswith(f"{backup.id}/problemClassifications/") for p in pcs)
    assert pcs[0].name is not None
    got = desk.support.problem_classifications.get(backup.name, pcs[0].name)
    assert got.display_name == pcs[0].display_name
    with pytest.raises(ResourceNotFoundError):
        desk.support.services.get(str(uuid.uuid4()))


# --------------------------------------------------------------------------- tickets


def test_a_ticket_is_filed_open_through_the_lro_and_listed(desk: Desk) -> None:
    _broken(desk)
    name, filed = _open(desk, _ticket(desk, AGENT_ERROR))
    assert filed.name == name
    assert filed.status == "Open"
    assert filed.service_display_name == "Azure Backup"
    assert "extension" in (filed.problem_classification_display_name or "").lower()
    assert filed.technical_ticket_details is not None
    assert filed.technical_ticket_details.resource_id == desk.vm_id()
    assert filed.support_ticket_id and filed.support_ticket_id.isdigit()
    assert filed.service_level_agreement is not None
    assert filed.service_level_agreement.sla_minutes == 240
    assert desk.support.support_tickets.get(name).status == "Open"
    assert [t.name for t in desk.support.support_tickets.list()] == [name]
    assert list(desk.support.communications.list(name)) == []  # no answer yet
    # Microsoft's answer is due after the duration on the lab's clock, not before.
    assert [d for d, _ in desk.answers.pending] == [
        SUPPORT_ROLLBACK_RESPONSE.lab_seconds(desk.roster.time_scale)
    ]


def test_a_damaged_release_is_rolled_back_answered_and_closed(desk: Desk) -> None:
    _broken(desk)
    assert desk.fabric.artifacts.latest_version(HANDLER) == "1.0.93.0"
    name, _ = _open(desk, _ticket(desk, AGENT_ERROR))
    assert desk.fabric.artifacts.latest_version(HANDLER) == "1.0.93.0"  # not before the delay
    desk.answers.run_all()
    assert [v.version for v in desk.fabric.artifacts.versions(HANDLER)] == ["1.0.92.0"]
    ticket = desk.support.support_tickets.get(name)
    assert ticket.status == "Closed"
    (message,) = desk.support.communications.list(name)
    assert message.communication_direction == "inbound"
    assert message.sender == "Microsoft Azure Support"
    assert message.body is not None
    assert "rolled the release back" in message.body
    assert "uninstall the VMSnapshotLinux extension from vm1" in message.body
    assert "next backup installs VMSnapshotLinux 1.0.92.0" in message.body
    assert message.name is not None
    assert desk.support.communications.get(name, message.name).body == message.body
    open_only = desk.support.support_tickets.list(filter="status eq 'Open'")
    assert [t.name for t in open_only] == []


def test_a_whole_package_is_no_defect_and_the_ticket_stays_open(desk: Desk) -> None:
    name, _ = _open(desk, _ticket(desk, AGENT_ERROR.replace("1.0.93.0", "1.0.92.0")))
    desk.answers.run_all()
    assert [v.version for v in desk.fabric.artifacts.versions(HANDLER)] == ["1.0.92.0"]
    assert desk.support.support_tickets.get(name).status == "Open"
    (message,) = desk.support.communications.list(name)
    assert message.body is not None
    assert "intact" in message.body and "no defect" in message.body


def test_no_version_named_is_no_defect_and_nothing_is_withdrawn(desk: Desk) -> None:
    _broken(desk)
    name, _ = _open(desk, _ticket(desk, "VMSnapshotLinux fails to update on my VM."))
    desk.answers.run_all()
    assert desk.fabric.artifacts.latest_version(HANDLER) == "1.0.93.0"
    assert desk.support.support_tickets.get(name).status == "Open"
    (message,) = desk.support.communications.list(name)
    assert message.body is not None and "no defect" in message.body


def test_a_ticket_not_about_a_lab_vm_withdraws_nothing(desk: Desk) -> None:
    _broken(desk)
    elsewhere = desk.vm_id().replace("/vm1", "/someone-elses-vm")
    name, _ = _open(desk, _ticket(desk, AGENT_ERROR, resource_id=elsewhere))
    desk.answers.run_all()
    assert desk.fabric.artifacts.latest_version(HANDLER) == "1.0.93.0"
    assert desk.support.support_tickets.get(name).status == "Open"


def test_the_trainees_token_files_a_ticket(desk: Desk) -> None:
    """A drill's trainee holds a JWT from the lab's managed identity, not the lab token."""
    identity = Client(desk.twin).get(
        f"{IDENTITY_PATH}?api-version={IDENTITY_API}&resource=https://management.azure.com/",
        headers={IDENTITY_HEADER: TOKEN},
    )
    assert identity.status_code == 200, identity.text
    jwt = identity.get_json()["access_token"]
    body = _valid_body(desk)
    answer = Client(desk.twin).put(
        f"/subscriptions/{desk.roster.subscription_id}/providers/Microsoft.Support/"
        f"supportTickets/trainee-case?api-version={API}",
        json=body,
        headers={"Authorization": f"Bearer {jwt}"},
    )
    assert answer.status_code == 202, answer.text
    assert (
        "/providers/Microsoft.Support/operationsStatus/" in answer.headers["Azure-AsyncOperation"]
    )
    assert len(desk.answers.pending) == 1


def test_a_ticket_name_in_use_is_refused(desk: Desk) -> None:
    name, _ = _open(desk, _ticket(desk, AGENT_ERROR))
    with pytest.raises(HttpResponseError) as caught:
        desk.support.support_tickets.begin_create(name, _ticket(desk, AGENT_ERROR)).result()
    assert caught.value.status_code == 409
    check = desk.support.support_tickets.check_name_availability(
        m.CheckNameAvailabilityInput(name=name, type="Microsoft.Support/supportTickets")
    )
    assert check.name_available is False
    with pytest.raises(ResourceNotFoundError):
        desk.support.support_tickets.get("no-such-case")


# --------------------------------------------------------------------------- malformed


def _valid_body(desk: Desk) -> dict[str, Any]:
    return {"properties": _ticket(desk, AGENT_ERROR).serialize()["properties"]}


@pytest.mark.parametrize(
    ("change", "field_named"),
    [
        (lambda p: p.pop("title"), "'properties.title'"),
        (lambda p: p.update(description=""), "'properties.description'"),
        (lambda p: p.update(severity="urgent"), "'properties.severity'"),
        (lambda p: p.update(serviceId="/providers/Microsoft.Support/services/x"), "serviceId"),
        (
            lambda p: p.update(problemClassificationId=p["problemClassificationId"] + "0"),
            "'properties.problemClassificationId'",
        ),
        (lambda p: p.pop("advancedDiagnosticConsent"), "advancedDiagnosticConsent"),
        (
            lambda p: p["contactDetails"].pop("primaryEmailAddress"),
            "'properties.contactDetails.primaryEmailAddress'",
        ),
        (
            lambda p: p.update(technicalTicketDetails={"resourceId": "vm1"}),
            "'properties.technicalTicketDetails.resourceId'",
        ),
        (lambda p: p.update(require24X7Response="yes"), "require24X7Response"),
    ],
)
def test_a_malformed_ticket_is_400_naming_the_field(
    desk: Desk, change: Callable[[dict[str, Any]], object], field_named: str
) -> None:
    body = _valid_body(desk)
    change(body["properties"])
    answer = Client(desk.twin).put(
        f"/subscriptions/{desk.roster.subscription_id}/providers/Microsoft.Support/"
        f"supportTickets/bad-case?api-version={API}",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "BadRequest"
    assert field_named in error["message"]
    assert "\n" not in error["message"]
    assert desk.twin.support is not None and desk.answers.pending == []


def test_malformed_json_and_bad_names_are_400(desk: Desk) -> None:
    url = f"/subscriptions/{desk.roster.subscription_id}/providers/Microsoft.Support/supportTickets"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    client = Client(desk.twin)
    not_json = client.put(f"{url}/x?api-version={API}", data="{", headers=headers)
    assert not_json.status_code == 400
    assert not_json.get_json()["error"]["code"] == "InvalidRequestContent"
    bad_name = client.put(f"{url}/-bad?api-version={API}", json=_valid_body(desk), headers=headers)
    assert bad_name.status_code == 400
    assert "support ticket name" in bad_name.get_json()["error"]["message"]
    old_api = client.get(f"{url}?api-version=2018-01-01", headers=headers)
    assert old_api.status_code == 400
    assert old_api.get_json()["error"]["code"] == "NoRegisteredProviderFound"
    bad_filter = client.get(f"{url}?api-version={API}&$filter=severity eq 'x'", headers=headers)
    assert bad_filter.status_code == 400
    assert "$filter" in bad_filter.get_json()["error"]["message"]


# --------------------------------------------------------------------------- the decision


class FakePublisher:
    def __init__(self, packages: dict[str, str], fail: bool = False) -> None:
        self.packages = dict(packages)
        self.fail = fail
        self.withdrawn: list[str] = []

    def published_packages(self, handler: str) -> tuple[tuple[str, str], ...] | None:
        if self.fail:
            raise FabricError("the fabric did not answer")
        return tuple(self.packages.items()) if handler == HANDLER else None

    def withdraw_version(self, handler: str, version: str) -> bool:
        self.withdrawn.append(version)
        return self.packages.pop(version, None) is not None


def test_the_decision_reads_only_the_named_versions() -> None:
    assert named_versions("agent 2.7.3.0, VMSnapshotLinux-1.0.93.0 and 1.0.93.0 again") == (
        "2.7.3.0",
        "1.0.93.0",
    )
    publisher = FakePublisher({"1.0.92.0": "ok", "1.0.93.0": "corrupt"})
    answer = answer_case("t", AGENT_ERROR, "vm1", publisher)
    assert answer.close and answer.withdrawn == ("1.0.93.0",)
    assert publisher.withdrawn == ["1.0.93.0"]
    assert "1.0.92.0" in answer.body
    missing = FakePublisher({"1.0.92.0": "ok", "1.0.94.0": "missing"})
    assert answer_case("t", "VMSnapshotLinux 1.0.94.0 404", "vm1", missing).close
    not_offered = FakePublisher({"1.0.92.0": "ok"})
    kept = answer_case("t", "VMSnapshotLinux 1.0.99.0 fails", "vm1", not_offered)
    assert not kept.close and not_offered.withdrawn == []
    other = FakePublisher({"1.0.92.0": "ok", "1.0.93.0": "corrupt"})
    assert not answer_case("t", "CustomScript 1.0.93.0 fails", "vm1", other).close
    assert other.withdrawn == []
    down = answer_case("t", AGENT_ERROR, "vm1", FakePublisher({}, fail=True))
    assert not down.close and "engineering team" in down.body


# --------------------------------------------------------------------------- the runbook


def _failed_download_status() -> bytes:
    """A VM status whose VMSnapshotLinux handler failed to download its new version, as
    waagent 2.7.3.0 reports it after its retries (no settings status: it never ran)."""
    status = vm_status()
    status["aggregateStatus"]["handlerAggregateStatus"] = [
        {
            "handlerVersion": "1.0.93.0",
            "handlerName": HANDLER,
            "status": "NotReady",
            "code": 1001,
            "useExactVersion": True,
            "formattedMessage": {
                "lang": "en-US",
                "message": "Failed to download artifacts: [ExtensionDownloadError] "
                "File is not a zip file",
            },
        }
    ]
    return json.dumps(status).encode()


def test_the_runbooks_support_steps_file_a_case_and_read_the_answer(
    desk: Desk, tmp_path: Path
) -> None:
    """Steps 3 and 4 of the scenario's runbook, as written, against the twin: the
    version and the agent's error from the instance view, the case, Microsoft's answer."""
    _broken(desk)
    guest = desk.fabric.guest("vm1")
    assert guest is not None
    guest.record_status(_failed_download_status(), CHANNEL_HOSTPLUGIN)
    assert desk.twin.support is not None
    desk.twin.support._schedule = lambda delay, work: threading.Timer(0.5, work).start()
    endpoint = desk.support._client._base_url
    ca = str(tmp_path / "tls" / "ca.pem")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ARM_ENDPOINT": endpoint,
        "IDENTITY_ENDPOINT": f"{endpoint}{IDENTITY_PATH}",
        "IDENTITY_HEADER": TOKEN,
        "AZURE_SUBSCRIPTION_ID": desk.roster.subscription_id,
        "AZURE_RESOURCE_GROUP": desk.roster.resource_group,
        "REQUESTS_CA_BUNDLE": ca,
        "SNAPLAB_VM": "vm1",
    }
    steps = [s for s in load_scenario("extension-update-failed").steps if "support" in s.code]
    assert len(steps) == 2 and all(s.fix and s.kind == "platform" for s in steps)
    result = run_steps(steps, StepPlace({}, "vm1", env, tmp_path), timeout=120)
    assert result.failed is None, result.transcript("runbook.md")
    filed, answered = (r.output for r in result.results)
    assert "1.0.93.0: Failed to download artifacts" in filed
    assert "Azure Backup / Backup of Azure VMs / VM agent or backup extension errors" in filed
    assert "rolled the release back" in answered and answered.rstrip().endswith("Closed")
    assert [v.version for v in desk.fabric.artifacts.versions(HANDLER)] == ["1.0.92.0"]
    (ticket,) = desk.support.support_tickets.list()
    assert "1.0.93.0" in (ticket.description or "") and ticket.status == "Closed"
