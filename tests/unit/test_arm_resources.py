"""What the twin serves for ``az`` beyond the resource providers: the cloud metadata
``az cloud register`` reads, Microsoft.Resources (the subscription ``az login`` lists, the
resource group), and the managed identity's JWTs (``az login --identity`` reads their
tenant), driven in-process with Werkzeug's test client."""

from __future__ import annotations

import base64
import json
import time

import pytest
from werkzeug.test import Client

from lab.platform.arm import access_token, naming
from lab.platform.arm.access_token import Identity, TokenRejected
from lab.platform.arm.app import ArmTwin
from lab.platform.arm.managed_identity import PATH as IDENTITY_PATH
from tests.unit.test_armtwin import ROSTER, SUB, TOKEN, FakeFabric, FakePower

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SUBS = "api-version=2022-12-01"
GROUPS = "api-version=2024-11-01"


@pytest.fixture
def client() -> Client:
    return Client(ArmTwin(FakeFabric(), FakePower(), TOKEN))


def _code(response: object) -> str:
    return str(response.get_json()["error"]["code"])  # type: ignore[attr-defined]


def _identity_token(client: Client, resource: str = "https://127.0.0.1:4443/") -> str:
    query = {"api-version": "2019-08-01", "resource": resource}
    answer = client.get(IDENTITY_PATH, query_string=query, headers={"X-IDENTITY-HEADER": TOKEN})
    assert answer.status_code == 200
    return str(answer.get_json()["access_token"])


def _claims(jwt: str) -> dict[str, object]:
    payload = jwt.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


# ------------------------------------------------------------------ cloud metadata


@pytest.mark.parametrize("path", ["/metadata/endpoints", "//metadata/endpoints"])
def test_the_cloud_metadata_is_public_and_names_the_twin(client: Client, path: str) -> None:
    # As the server hands it over: a test client URL would read "//metadata" as a host.
    answer = client.get(
        "/",
        query_string="api-version=2022-09-01",
        base_url="https://127.0.0.1:4443",
        environ_overrides={"PATH_INFO": path},
    )
    assert answer.status_code == 200
    cloud = answer.get_json()
    root = "https://127.0.0.1:4443/"
    assert cloud["resourceManager"] == root
    assert cloud["authentication"]["audiences"] == [root]
    assert cloud["authentication"]["loginEndpoint"] == root
    assert cloud["name"] and isinstance(cloud["suffixes"], dict)
    assert answer.headers["x-ms-request-id"]


@pytest.mark.parametrize(
    ("query", "code"),
    [("", "MissingApiVersionParameter"), ("api-version=2019-05-01", "InvalidApiVersionParameter")],
)
def test_the_cloud_metadata_wants_its_api_version(client: Client, query: str, code: str) -> None:
    answer = client.get("/metadata/endpoints", query_string=query)
    assert answer.status_code == 400 and _code(answer) == code


# ------------------------------------------------------------------ subscriptions


def test_the_lab_is_one_subscription_in_its_tenant(client: Client) -> None:
    answer = client.get("/subscriptions", query_string=SUBS, headers=AUTH)
    assert answer.status_code == 200
    (sub,) = answer.get_json()["value"]
    assert sub["id"] == f"/subscriptions/{SUB}" and sub["subscriptionId"] == SUB
    assert sub["tenantId"] == naming.tenant_id(ROSTER.lab)
    assert sub["state"] == "Enabled" and sub["displayName"]
    one = client.get(f"/subscriptions/{SUB}", query_string=SUBS, headers=AUTH)
    assert one.status_code == 200 and one.get_json() == sub


def test_another_subscription_is_not_found(client: Client) -> None:
    other = "/subscriptions/99999999-0000-0000-0000-000000000000"
    answer = client.get(other, query_string=SUBS, headers=AUTH)
    assert answer.status_code == 404 and _code(answer) == "SubscriptionNotFound"
    groups = client.get(f"{other}/resourcegroups/x", query_string=GROUPS, headers=AUTH)
    assert groups.status_code == 404 and _code(groups) == "SubscriptionNotFound"


def test_subscriptions_need_a_token_and_a_known_api_version(client: Client) -> None:
    assert client.get("/subscriptions", query_string=SUBS).status_code == 401
    old = client.get("/subscriptions", query_string="api-version=2099-01-01", headers=AUTH)
    assert old.status_code == 400 and _code(old) == "NoRegisteredProviderFound"


# ------------------------------------------------------------------ resource groups


@pytest.mark.parametrize("spelling", ["resourcegroups", "resourceGroups"])
def test_the_resource_group_in_either_spelling(client: Client, spelling: str) -> None:
    base = f"/subscriptions/{SUB}/{spelling}"
    one = client.get(f"{base}/{ROSTER.resource_group.upper()}", query_string=GROUPS, headers=AUTH)
    assert one.status_code == 200
    group = one.get_json()
    assert group["id"] == naming.group_id(ROSTER) and group["location"] == ROSTER.location
    assert group["properties"]["provisioningState"] == "Succeeded"
    listed = client.get(base, query_string=GROUPS, headers=AUTH)
    assert listed.get_json()["value"] == [group]
    missing = client.get(f"{base}/elsewhere", query_string=GROUPS, headers=AUTH)
    assert missing.status_code == 404 and _code(missing) == "ResourceGroupNotFound"


# ------------------------------------------------------------------ the identity's tokens


def test_the_identity_hands_out_a_jwt_of_the_labs_tenant(client: Client) -> None:
    jwt = _identity_token(client, "https://127.0.0.1:4443/")
    claims = _claims(jwt)
    tenant = naming.tenant_id(ROSTER.lab)
    assert claims["tid"] == tenant and claims["iss"] == f"https://sts.windows.net/{tenant}/"
    assert claims["aud"] == "https://127.0.0.1:4443/" and claims["idtyp"] == "app"
    assert int(str(claims["exp"])) > time.time() + 3000
    assert claims["oid"] == claims["sub"]


def test_the_twin_accepts_the_identitys_jwt(client: Client) -> None:
    jwt = _identity_token(client)
    headers = {"Authorization": f"Bearer {jwt}"}
    assert client.get("/subscriptions", query_string=SUBS, headers=headers).status_code == 200


def test_a_tampered_or_foreign_jwt_is_refused(client: Client) -> None:
    head, body, signature = _identity_token(client).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["tid"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    tampered = client.get(
        "/subscriptions",
        query_string=SUBS,
        headers={"Authorization": f"Bearer {head}.{forged}.{signature}"},
    )
    assert tampered.status_code == 401 and _code(tampered) == "InvalidAuthenticationTokenSignature"
    identity = Identity(naming.tenant_id(ROSTER.lab), "client")
    foreign = access_token.issue(b"another-lab-token", identity, "r", int(time.time()), 60)
    answer = client.get(
        "/subscriptions", query_string=SUBS, headers={"Authorization": f"Bearer {foreign}"}
    )
    assert answer.status_code == 401 and _code(answer) == "InvalidAuthenticationTokenSignature"


def test_an_expired_jwt_is_refused_as_arm_does(client: Client) -> None:
    identity = Identity(naming.tenant_id(ROSTER.lab), "client")
    old = access_token.issue(TOKEN.encode(), identity, "r", int(time.time()) - 7200, 3600)
    answer = client.get(
        "/subscriptions", query_string=SUBS, headers={"Authorization": f"Bearer {old}"}
    )
    assert answer.status_code == 401 and _code(answer) == "ExpiredAuthenticationToken"
    assert "is earlier than current UTC time" in answer.get_json()["error"]["message"]


@pytest.mark.parametrize(
    "token", ["a.b", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", "...", "x" * 40]
)
def test_garbage_tokens_are_invalid_not_errors(token: str) -> None:
    with pytest.raises(TokenRejected) as raised:
        access_token.verify(token, TOKEN.encode(), int(time.time()))
    assert raised.value.code.startswith("Invalid")
