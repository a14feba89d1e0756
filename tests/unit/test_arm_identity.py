"""The lab's managed identity: Azure's own credential finds the lab's token with no lab code."""

from __future__ import annotations

import pytest
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient
from werkzeug.test import Client

from lab.platform.arm.app import ArmTwin
from lab.platform.arm.managed_identity import PATH
from tests.unit.test_armtwin import RG, SUB, TOKEN, FakeFabric, FakePower, Lab, lab

__all__ = ["lab"]  # the fixture, imported for pytest


def test_default_azure_credential_drives_the_sdk_against_the_lab(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{lab.endpoint}{PATH}")
    monkeypatch.setenv("IDENTITY_HEADER", TOKEN)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(lab.ca_file))
    credential = DefaultAzureCredential(
        exclude_cli_credential=True,
        exclude_powershell_credential=True,
        exclude_developer_cli_credential=True,
        exclude_visual_studio_code_credential=True,
        exclude_shared_token_cache_credential=True,
        exclude_interactive_browser_credential=True,
    )
    compute = ComputeManagementClient(credential, SUB, base_url=lab.endpoint)
    assert [vm.name for vm in compute.virtual_machines.list(RG)] == ["vm1", "vm2", "vm3"]
    compute.close()


@pytest.fixture
def client() -> Client:
    return Client(ArmTwin(FakeFabric(), FakePower(), TOKEN))


def test_token_needs_the_identity_header(client: Client) -> None:
    query = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    assert client.get(PATH, query_string=query).status_code == 401
    wrong = client.get(PATH, query_string=query, headers={"X-IDENTITY-HEADER": "guess"})
    assert wrong.status_code == 401
    right = client.get(PATH, query_string=query, headers={"X-IDENTITY-HEADER": TOKEN})
    assert right.status_code == 200
    body = right.get_json()
    # A JWT signed with the lab's token (tests/unit/test_arm_resources.py reads its claims).
    assert body["access_token"].count(".") == 2 and body["token_type"] == "Bearer"
    assert int(body["expires_on"]) > 0 and body["resource"] == query["resource"]


@pytest.mark.parametrize(
    "query", [{"resource": "https://management.azure.com"}, {"api-version": "2019-08-01"}]
)
def test_token_refuses_a_malformed_request(client: Client, query: dict[str, str]) -> None:
    response = client.get(PATH, query_string=query, headers={"X-IDENTITY-HEADER": TOKEN})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
