"""The WireServer app, driven in-process as a guest would drive it."""

from __future__ import annotations

import json
from pathlib import Path
from xml.dom import minidom

import pytest
from werkzeug.test import Client

from lab.platform.documents import HandlerSpec
from lab.platform.guest_state import Fabric
from lab.platform.wireserver import WireServerApp
from tests.unit.agent_crypto import (
    decrypt_protected_settings,
    install_certificates,
    make_transport_cert,
    transport_header,
)
from tests.unit.fabric_samples import (
    STRANGER_IP,
    VM1_IP,
    VM2_IP,
    agent_find,
    agent_getattr,
    agent_text,
    make_fabric,
    status_bytes,
    vm_status,
)

HEALTH = (
    '<?xml version="1.0" encoding="utf-8"?><Health xmlns:xsi="http://www.w3.org/2001/'
    'XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
    "<GoalStateIncarnation>1</GoalStateIncarnation><Container><ContainerId>c</ContainerId>"
    "<RoleInstanceList><Role><InstanceId>i</InstanceId><Health><State>Ready</State>"
    "</Health></Role></RoleInstanceList></Container></Health>"
)


@pytest.fixture
def fabric() -> Fabric:
    return make_fabric()[0]


@pytest.fixture
def client(fabric: Fabric) -> Client:
    return Client(WireServerApp(fabric))


def as_vm(ip: str = VM1_IP) -> dict[str, str]:
    return {"REMOTE_ADDR": ip}


def path_of(url: str) -> str:
    """The path+query of an absolute URL the fabric handed out."""
    return url.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def test_versions(client: Client) -> None:
    response = client.get("/?comp=versions", environ_overrides=as_vm())
    assert response.status_code == 200
    assert b"2012-11-30" in response.data


def test_goal_state_and_the_documents_it_points_to(client: Client, fabric: Fabric) -> None:
    response = client.get("/machine/?comp=goalstate", environ_overrides=as_vm())
    assert response.status_code == 200
    doc = minidom.parseString(response.data)
    assert agent_text(agent_find(doc, "Incarnation")) == "1"
    guest = fabric.guest("vm1")
    assert guest is not None
    assert agent_text(agent_find(doc, "ContainerId")) == guest.identity.container_id
    for tag in ("HostingEnvironmentConfig", "SharedConfig", "ExtensionsConfig"):
        url = agent_text(agent_find(doc, tag))
        assert url is not None and url.startswith("http://10.199.0.2/machine/")
        sub = client.get(path_of(url), environ_overrides=as_vm())
        assert sub.status_code == 200, (tag, sub.data)
        minidom.parseString(sub.data)
    ext_url = agent_text(agent_find(doc, "ExtensionsConfig"))
    assert ext_url is not None
    ext = minidom.parseString(client.get(path_of(ext_url), environ_overrides=as_vm()).data)
    blob = agent_text(agent_find(ext, "StatusUploadBlob"))
    assert blob is not None and blob.startswith("http://10.199.0.2/machine/statusblob/vm1?")


def test_goal_state_path_variants_are_loose(client: Client) -> None:
    for path in (
        "/machine?comp=goalstate",
        "/machine/?COMP=GoalState",
        "/machine//?comp=goalstate",
    ):
        assert client.get(path, environ_overrides=as_vm()).status_code == 200, path


def test_new_handler_appears_after_bump(client: Client, fabric: Fabric) -> None:
    guest = fabric.guest("vm1")
    assert guest is not None
    guest.set_handler(
        HandlerSpec(
            name="Lab.Test.HelloExt",
            version="1.0.0",
            manifest_url="http://10.199.0.2/artifacts/extensions/Lab.Test.HelloExt/manifest.xml",
            seq_no=2,
            public_settings={"taskId": "abc&def"},
        )
    )
    goal = minidom.parseString(
        client.get("/machine/?comp=goalstate", environ_overrides=as_vm()).data
    )
    assert agent_text(agent_find(goal, "Incarnation")) == "2"
    ext_url = agent_text(agent_find(goal, "ExtensionsConfig"))
    assert ext_url is not None and "incarnation=2" in ext_url
    ext = minidom.parseString(client.get(path_of(ext_url), environ_overrides=as_vm()).data)
    runtime = agent_find(ext, "RuntimeSettings")
    assert agent_getattr(runtime, "seqNo") == "2"
    settings = json.loads(agent_text(runtime) or "")
    assert settings["runtimeSettings"][0]["handlerSettings"]["publicSettings"] == {
        "taskId": "abc&def"
    }


def test_guests_get_their_own_goal_states(client: Client, fabric: Fabric) -> None:
    vm2 = fabric.guest("vm2")
    assert vm2 is not None
    vm2.bump()
    one = minidom.parseString(
        client.get("/machine/?comp=goalstate", environ_overrides=as_vm()).data
    )
    two = minidom.parseString(
        client.get("/machine/?comp=goalstate", environ_overrides=as_vm(VM2_IP)).data
    )
    assert agent_text(agent_find(one, "Incarnation")) == "1"
    assert agent_text(agent_find(two, "Incarnation")) == "2"
    # vm1 may not read vm2's config documents.
    url = agent_text(agent_find(two, "HostingEnvironmentConfig"))
    assert url is not None
    assert client.get(path_of(url), environ_overrides=as_vm()).status_code == 404


def test_health_is_recorded(client: Client, fabric: Fabric) -> None:
    response = client.post(
        "/machine?comp=health",
        data=HEALTH,
        content_type="text/xml;charset=utf-8",
        environ_overrides=as_vm(),
    )
    assert response.status_code == 200
    guest = fabric.guest("vm1")
    assert guest is not None
    health = guest.latest_health()
    assert health is not None and health.state == "Ready" and health.incarnation == "1"


def test_health_with_substatus(client: Client, fabric: Fabric) -> None:
    body = HEALTH.replace(
        "<State>Ready</State>",
        "<State>NotReady</State><Details><SubStatus>Provisioning</SubStatus>"
        "<Description>Starting &amp; waiting</Description></Details>",
    )
    assert (
        client.post("/machine?comp=health", data=body, environ_overrides=as_vm()).status_code == 200
    )
    guest = fabric.guest("vm1")
    assert guest is not None
    health = guest.latest_health()
    assert health is not None
    assert (health.state, health.substatus, health.description) == (
        "NotReady",
        "Provisioning",
        "Starting & waiting",
    )


def test_telemetry_and_health_service_answer_200(client: Client) -> None:
    telemetry = (
        '<?xml version="1.0"?><TelemetryData version="1.0"><Provider id="x">'
        "</Provider></TelemetryData>"
    )
    assert (
        client.post(
            "/machine?comp=telemetrydata", data=telemetry, environ_overrides=as_vm()
        ).status_code
        == 200
    )
    observation = json.dumps({"Api": "reporttargethealth", "Version": "1.0", "Observations": []})
    assert (
        client.post("/HealthService", data=observation, environ_overrides=as_vm()).status_code
        == 200
    )
    assert (
        client.post(
            "/machine?comp=roleProperties", data="<x/>", environ_overrides=as_vm()
        ).status_code
        == 202
    )


def test_direct_block_blob_put_is_recorded(client: Client, fabric: Fabric) -> None:
    body = status_bytes()
    response = client.put(
        "/machine/statusblob/vm1?sr=b&sp=rw&se=9999-01-01&sig=snaplab",
        data=body,
        headers={"x-ms-blob-type": "BlockBlob", "x-ms-version": "2014-02-14"},
        environ_overrides=as_vm(),
    )
    assert response.status_code == 201
    guest = fabric.guest("vm1")
    assert guest is not None
    latest = guest.latest_status()
    assert latest is not None and latest.channel == "direct" and latest.parsed == vm_status()
    echoed = client.get("/machine/statusblob/vm1?sig=x", environ_overrides=as_vm())
    assert echoed.status_code == 200 and json.loads(echoed.data) == vm_status()


def test_direct_page_blob_is_reassembled(client: Client, fabric: Fabric) -> None:
    data = status_bytes()
    size = (len(data) + 511) // 512 * 512
    url = "/machine/statusblob/vm1?sr=b&sig=x"
    create = client.put(
        url,
        data=b"",
        headers={"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(size)},
        environ_overrides=as_vm(),
    )
    assert create.status_code == 201
    page = bytearray(size)
    page[: len(data)] = data
    write = client.put(
        url + "&comp=page",
        data=bytes(page),
        headers={"x-ms-range": f"bytes=0-{size - 1}", "x-ms-page-write": "update"},
        environ_overrides=as_vm(),
    )
    assert write.status_code == 201
    guest = fabric.guest("vm1")
    assert guest is not None
    latest = guest.latest_status()
    assert latest is not None and latest.parsed == vm_status()


def test_imds(client: Client) -> None:
    headers = {"Metadata": "True"}
    full = client.get(
        "/metadata/instance?api-version=2018-02-01", headers=headers, environ_overrides=as_vm()
    )
    assert full.status_code == 200
    doc = json.loads(full.data)
    assert doc["network"]["interface"][0]["ipv4"]["ipAddress"][0]["privateIpAddress"] == VM1_IP
    compute = client.get(
        "/metadata/instance/compute?api-version=2018-02-01",
        headers=headers,
        environ_overrides=as_vm(),
    )
    assert json.loads(compute.data)["name"] == "vm1"
    text = client.get(
        "/metadata/instance/compute/name?api-version=2021-02-01&format=text",
        headers=headers,
        environ_overrides=as_vm(),
    )
    assert text.data == b"vm1"
    mac = client.get(
        "/metadata/instance/network/interface/0/macAddress?format=text",
        headers=headers,
        environ_overrides=as_vm(),
    )
    assert mac.data == b"02420AC7000B"
    vm2 = client.get("/metadata/instance/compute", headers=headers, environ_overrides=as_vm(VM2_IP))
    assert json.loads(vm2.data)["name"] == "vm2"


def test_artifacts_are_served(client: Client, fabric: Fabric) -> None:
    url = fabric.artifacts.publish_extension("Lab.Test.HelloExt", "1.0.0", b"PK-zip")
    manifest = client.get(path_of(url), environ_overrides=as_vm())
    assert manifest.status_code == 200
    uri = agent_text(agent_find(minidom.parseString(manifest.data), "Uri"))
    assert uri is not None
    package = client.get(path_of(uri), environ_overrides=as_vm())
    assert package.status_code == 200 and package.data == b"PK-zip"


# --------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected"),
    [
        ("GET", "/?comp=versions", {"environ_overrides": {"REMOTE_ADDR": STRANGER_IP}}, 403),
        (
            "GET",
            "/machine/?comp=goalstate",
            {"environ_overrides": {"REMOTE_ADDR": STRANGER_IP}},
            403,
        ),
        ("GET", "/nowhere", {}, 404),
        ("GET", "/", {}, 400),
        ("GET", "/machine/?comp=bogus", {}, 400),
        ("DELETE", "/machine/?comp=goalstate", {}, 405),
        ("PUT", "/?comp=versions", {}, 405),
        ("GET", "/HealthService", {}, 405),
        ("POST", "/machine?comp=health", {"data": "<Health><oops"}, 400),
        ("POST", "/machine?comp=health", {"data": "not xml at all"}, 400),
        ("POST", "/machine?comp=health", {"data": "<Other><State>Ready</State></Other>"}, 400),
        ("POST", "/machine?comp=health", {"data": "<Health><State> </State></Health>"}, 400),
        ("POST", "/machine?comp=health", {"data": b"\xff\xfe<\x00"}, 400),
        ("POST", "/machine?comp=nothing", {"data": "x"}, 400),
        ("GET", "/machine/a/b?comp=config&type=extensionsConfig", {}, 404),
        ("PUT", "/machine/statusblob/vm1", {"data": "{}"}, 400),
        (
            "PUT",
            "/machine/statusblob/vm1",
            {"data": "not json", "headers": {"x-ms-blob-type": "BlockBlob"}},
            400,
        ),
        (
            "PUT",
            "/machine/statusblob/vm1",
            {"data": "[1]", "headers": {"x-ms-blob-type": "BlockBlob"}},
            400,
        ),
        (
            "PUT",
            "/machine/statusblob/vm1",
            {
                "data": "",
                "headers": {"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": "x"},
            },
            400,
        ),
        (
            "PUT",
            "/machine/statusblob/vm1?comp=page",
            {"data": "abc", "headers": {"x-ms-range": "bytes=0-2"}},
            400,
        ),
        ("PUT", "/machine/statusblob/vm1?comp=page", {"data": "abc"}, 400),
        (
            "PUT",
            "/machine/statusblob/nobody",
            {"data": "{}", "headers": {"x-ms-blob-type": "BlockBlob"}},
            404,
        ),
        ("GET", "/machine/statusblob/vm1", {}, 404),
        ("DELETE", "/machine/statusblob/vm1", {}, 405),
        ("GET", "/metadata/instance", {}, 400),
        ("GET", "/metadata/instance/compute/nothing", {"headers": {"Metadata": "true"}}, 404),
        ("GET", "/metadata/identity/oauth2/token", {"headers": {"Metadata": "true"}}, 404),
        ("POST", "/metadata/instance", {"headers": {"Metadata": "true"}}, 405),
        ("GET", "/artifacts/missing.zip", {}, 404),
    ],
)
def test_malformed_requests_get_4xx(
    client: Client, method: str, path: str, kwargs: dict[str, object], expected: int
) -> None:
    kwargs = dict(kwargs)
    kwargs.setdefault("environ_overrides", as_vm())
    response = client.open(path, method=method, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == expected, response.data
    # The app keeps serving after every one of them.
    assert client.get("/?comp=versions", environ_overrides=as_vm()).status_code == 200


def test_page_write_before_create_is_rejected(client: Client) -> None:
    response = client.put(
        "/machine/statusblob/vm1?comp=page",
        data=b"x" * 512,
        headers={"x-ms-range": "bytes=0-511"},
        environ_overrides=as_vm(),
    )
    assert response.status_code == 400


def test_oversized_body_is_413(client: Client) -> None:
    response = client.post(
        "/machine?comp=health",
        data=b"<Health>" + b" " * (5 * 1024 * 1024),
        environ_overrides=as_vm(),
    )
    assert response.status_code == 413
    declared = client.post(
        "/machine?comp=telemetrydata",
        data=b"<x/>",
        environ_overrides={**as_vm(), "CONTENT_LENGTH": str(64 * 1024 * 1024)},
    )
    assert declared.status_code == 413


def test_errors_are_xml(client: Client) -> None:
    response = client.get("/?comp=versions", environ_overrides={"REMOTE_ADDR": STRANGER_IP})
    doc = minidom.parseString(response.data)
    assert agent_text(agent_find(doc, "Code")) == "Forbidden"


# --------------------------------------------------------------------------- W5 certificates


def _certificates_url(client: Client, ip: str = VM1_IP) -> str:
    goal = minidom.parseString(
        client.get("/machine/?comp=goalstate", environ_overrides=as_vm(ip)).data
    )
    url = agent_text(agent_find(agent_find(goal, "Configuration"), "Certificates"))
    assert url is not None
    return url


def _cert_headers(lib: Path, cipher: str = "DES_EDE3_CBC") -> dict[str, str]:
    """What WireClient.get_header_for_cert sends (2.2.47 / 2.7.3.0 / 2.12.0.2)."""
    return {
        "x-ms-agent-name": "WALinuxAgent",
        "x-ms-version": "2012-11-30",
        "x-ms-cipher-name": cipher,
        "x-ms-guest-agent-public-x509-cert": transport_header(lib),
    }


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    make_transport_cert(tmp_path / "waagent")
    return tmp_path / "waagent"


def test_goal_state_points_at_the_certificates(client: Client, fabric: Fabric) -> None:
    url = _certificates_url(client)
    guest = fabric.guest("vm1")
    assert guest is not None
    assert url.startswith(f"http://10.199.0.2/machine/{guest.identity.container_id}/")
    assert "comp=certificates" in url and "incarnation=1" in url


@pytest.mark.parametrize("cipher", ["DES_EDE3_CBC", "AES128_CBC"])
def test_agent_gets_its_tenant_certificate(
    client: Client, fabric: Fabric, lib: Path, cipher: str
) -> None:
    response = client.get(
        path_of(_certificates_url(client)),
        headers=_cert_headers(lib, cipher),
        environ_overrides=as_vm(),
    )
    assert response.status_code == 200, response.data
    assert agent_text(agent_find(minidom.parseString(response.data), "Incarnation")) == "1"
    guest = fabric.guest("vm1")
    assert guest is not None
    assert install_certificates(response.data, lib) == [fabric.tenant_certificate(guest).thumbprint]


def test_each_vm_has_its_own_tenant_certificate(client: Client, fabric: Fabric, lib: Path) -> None:
    thumbs = []
    for ip in (VM1_IP, VM2_IP):
        response = client.get(
            path_of(_certificates_url(client, ip)),
            headers=_cert_headers(lib),
            environ_overrides=as_vm(ip),
        )
        thumbs.append(install_certificates(response.data, lib))
    assert thumbs[0] != thumbs[1]
    # vm1 may not fetch vm2's certificates.
    stolen = client.get(
        path_of(_certificates_url(client, VM2_IP)),
        headers=_cert_headers(lib),
        environ_overrides=as_vm(),
    )
    assert stolen.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-ms-guest-agent-public-x509-cert": ""},
        {"x-ms-guest-agent-public-x509-cert": "%%% not base64 %%%"},
        {"x-ms-guest-agent-public-x509-cert": "MAMCAQA="},  # DER, not a certificate
    ],
)
def test_unusable_transport_cert_is_400(client: Client, headers: dict[str, str]) -> None:
    response = client.get(
        path_of(_certificates_url(client)), headers=headers, environ_overrides=as_vm()
    )
    assert response.status_code == 400
    assert agent_text(agent_find(minidom.parseString(response.data), "Code")) == (
        "InvalidHeaderValue"
    )
    assert client.get("/?comp=versions", environ_overrides=as_vm()).status_code == 200


def test_unknown_cipher_is_400(client: Client, lib: Path) -> None:
    response = client.get(
        path_of(_certificates_url(client)),
        headers=_cert_headers(lib, "ROT13"),
        environ_overrides=as_vm(),
    )
    assert response.status_code == 400
    assert b"cipher" in response.data


def test_protected_settings_reach_the_extension(client: Client, fabric: Fabric, lib: Path) -> None:
    """The guest's whole path through the WireServer: Certificates -> <THUMB>.crt/.prv,
    ExtensionsConfig -> protectedSettings + thumbprint -> ``openssl smime -decrypt``."""
    guest = fabric.guest("vm1")
    assert guest is not None
    secret = {"statusBlobUri": "http://10.199.0.3/s?sig=a&sp=rw", "objectStr": "WyJ4Il0="}
    guest.set_handler(
        HandlerSpec(
            name="Microsoft.Azure.RecoveryServices.VMSnapshotLinux",
            version="1.0.91.0",
            manifest_url="http://10.199.0.2/artifacts/m.xml",
            seq_no=1,
            public_settings={"taskId": "t-1"},
            protected_settings=secret,
        )
    )
    certs = client.get(
        path_of(_certificates_url(client)), headers=_cert_headers(lib), environ_overrides=as_vm()
    )
    [thumb] = install_certificates(certs.data, lib)
    goal = minidom.parseString(
        client.get("/machine/?comp=goalstate", environ_overrides=as_vm()).data
    )
    ext_url = agent_text(agent_find(goal, "ExtensionsConfig"))
    assert ext_url is not None
    ext = client.get(path_of(ext_url), environ_overrides=as_vm())
    assert ext.status_code == 200
    runtime = agent_text(agent_find(minidom.parseString(ext.data), "RuntimeSettings"))
    settings = json.loads(runtime or "")["runtimeSettings"][0]["handlerSettings"]
    assert settings["protectedSettingsCertThumbprint"] == thumb
    assert decrypt_protected_settings(settings["protectedSettings"], thumb, lib) == secret
