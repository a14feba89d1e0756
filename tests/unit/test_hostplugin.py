"""The HostGAPlugin app: the calls every agent makes, and status envelope decoding."""

from __future__ import annotations

import base64
import json

import pytest
from werkzeug.test import Client

from lab.platform.guest_state import Fabric
from lab.platform.hostplugin import EnvelopeError, HostPluginApp, decode_envelope
from tests.unit.fabric_samples import (
    FABRIC_IP,
    STATUS_URL,
    STRANGER_IP,
    VM1_IP,
    block_envelope,
    make_fabric,
    page_envelopes,
    status_bytes,
    vm_status,
)

HGAP_HEADERS = {
    "x-ms-version": "2015-09-01",
    "Content-type": "application/json",
    "x-ms-containerid": "c",
    "x-ms-host-config-name": "n",
}


@pytest.fixture
def fabric() -> Fabric:
    return make_fabric()[0]


@pytest.fixture
def client(fabric: Fabric) -> Client:
    return Client(HostPluginApp(fabric))


def as_vm(ip: str = VM1_IP) -> dict[str, str]:
    return {"REMOTE_ADDR": ip}


def test_versions_lists_2015_09_01(client: Client) -> None:
    response = client.get("/versions", environ_overrides=as_vm())
    assert response.status_code == 200
    assert "2015-09-01" in json.loads(response.data)


def test_health_is_200(client: Client) -> None:
    assert client.get("/health", environ_overrides=as_vm()).status_code == 200


def test_vm_settings_is_a_clean_404(client: Client) -> None:
    response = client.get(
        "/vmSettings",
        headers={"x-ms-version": "2015-09-01", "x-ms-client-correlationid": "x"},
        environ_overrides=as_vm(),
    )
    assert response.status_code == 404
    assert "ETag" not in response.headers


def test_block_blob_status_is_recorded(client: Client, fabric: Fabric) -> None:
    response = client.put(
        "/status",
        data=block_envelope(status_bytes()),
        headers=HGAP_HEADERS,
        environ_overrides=as_vm(),
    )
    assert response.status_code == 200
    guest = fabric.guest("vm1")
    assert guest is not None
    latest = guest.latest_status()
    assert latest is not None
    assert latest.channel == "hostplugin"
    assert latest.parsed == vm_status()
    assert guest.view().agent_status == "Ready"


@pytest.mark.parametrize("page_size", [4 * 1024 * 1024, 512])
def test_page_blob_envelopes_are_reassembled(
    client: Client, fabric: Fabric, page_size: int
) -> None:
    envelopes = page_envelopes(status_bytes(ext_status="transitioning"), page=page_size)
    assert len(envelopes) >= 2
    guest = fabric.guest("vm1")
    assert guest is not None
    for index, body in enumerate(envelopes):
        response = client.put("/status", data=body, headers=HGAP_HEADERS, environ_overrides=as_vm())
        assert response.status_code == 200, response.data
        if index < len(envelopes) - 1:
            assert guest.latest_status() is None
    latest = guest.latest_status()
    assert latest is not None
    assert latest.parsed == vm_status(ext_status="transitioning")


def test_status_is_recorded_for_the_sending_vm(client: Client, fabric: Fabric) -> None:
    client.put(
        "/status", data=block_envelope(status_bytes()), environ_overrides=as_vm("10.199.0.12")
    )
    vm1, vm2 = fabric.guest("vm1"), fabric.guest("vm2")
    assert vm1 is not None and vm2 is not None
    assert vm1.latest_status() is None
    assert vm2.latest_status() is not None


def test_extension_artifact_serves_only_fabric_artifacts(client: Client, fabric: Fabric) -> None:
    manifest_url = fabric.artifacts.publish_extension("Lab.Test.HelloExt", "1.0.0", b"PK-zip")
    ok = client.get(
        "/extensionArtifact",
        headers={"x-ms-artifact-location": manifest_url, "x-ms-version": "2015-09-01"},
        environ_overrides=as_vm(),
    )
    assert ok.status_code == 200
    assert b"Lab.Test.HelloExt__1.0.0.zip" in ok.data
    zip_url = (
        f"http://{FABRIC_IP}/artifacts/extensions/Lab.Test.HelloExt/Lab.Test.HelloExt__1.0.0.zip"
    )
    package = client.get(
        "/extensionArtifact",
        headers={
            "x-ms-artifact-location": zip_url,
            "x-ms-artifact-manifest-location": manifest_url,
        },
        environ_overrides=as_vm(),
    )
    assert package.data == b"PK-zip"
    for outside in (
        "http://example.com/artifacts/extensions/Lab.Test.HelloExt/manifest.xml",
        f"https://{FABRIC_IP}/artifacts/extensions/Lab.Test.HelloExt/manifest.xml",
        f"http://{FABRIC_IP}:8080/artifacts/extensions/Lab.Test.HelloExt/manifest.xml",
        f"http://{FABRIC_IP}/artifacts/nothing.zip",
    ):
        response = client.get(
            "/extensionArtifact",
            headers={"x-ms-artifact-location": outside},
            environ_overrides=as_vm(),
        )
        assert response.status_code == 404, outside


def test_vm_agent_log_is_accepted(client: Client) -> None:
    assert (
        client.put("/vmAgentLog", data=b"PK\x03\x04", environ_overrides=as_vm()).status_code == 200
    )


def test_decode_envelope() -> None:
    uri, headers, content = decode_envelope(block_envelope(b"{}"))
    assert uri == STATUS_URL
    assert headers["x-ms-blob-type"] == "BlockBlob"
    assert content == b"{}"
    _, _, none = decode_envelope(page_envelopes(b"{}")[0])
    assert none is None
    with pytest.raises(EnvelopeError):
        decode_envelope(b'{"requestUri": "u", "content": "***"}')


def envelope(**fields: object) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected"),
    [
        ("GET", "/versions", {"environ_overrides": {"REMOTE_ADDR": STRANGER_IP}}, 403),
        ("PUT", "/status", {"environ_overrides": {"REMOTE_ADDR": STRANGER_IP}}, 403),
        ("GET", "/nothing", {}, 404),
        ("POST", "/status", {}, 405),
        ("GET", "/status", {}, 405),
        ("PUT", "/versions", {}, 405),
        ("POST", "/vmSettings", {}, 405),
        ("PUT", "/status", {"data": b"not json"}, 400),
        ("PUT", "/status", {"data": b"\xff\xfe"}, 400),
        ("PUT", "/status", {"data": b"[1, 2]"}, 400),
        ("PUT", "/status", {"data": envelope(headers=[], content="e30=")}, 400),
        ("PUT", "/status", {"data": envelope(requestUri="u", headers="x", content="e30=")}, 400),
        (
            "PUT",
            "/status",
            {"data": envelope(requestUri="u", headers=[{"x": 1}], content="e30=")},
            400,
        ),
        (
            "PUT",
            "/status",
            {"data": envelope(requestUri="u", headers=[], content="!!notbase64!!")},
            400,
        ),
        ("PUT", "/status", {"data": envelope(requestUri="u", headers=[], content=5)}, 400),
        ("PUT", "/status", {"data": envelope(requestUri="u", headers=[])}, 400),
        (
            "PUT",
            "/status",
            {"data": envelope(requestUri="http://[::1/x?comp=page", headers=[])},
            400,
        ),
        (
            "PUT",
            "/status",
            {
                "data": envelope(
                    requestUri="u", headers=[], content=base64.b64encode(b"nope").decode()
                )
            },
            400,
        ),
        (
            "PUT",
            "/status",
            {
                "data": envelope(
                    requestUri="u", headers=[], content=base64.b64encode(b"[1]").decode()
                )
            },
            400,
        ),
        (
            "PUT",
            "/status",
            {
                "data": envelope(
                    requestUri="u",
                    headers=[{"headerName": "x-ms-blob-type", "headerValue": "PageBlob"}],
                )
            },
            400,
        ),
        (
            "PUT",
            "/status",
            {"data": envelope(requestUri="u?comp=page", headers=[], content="e30=")},
            400,
        ),
        (
            "PUT",
            "/status",
            {
                "data": envelope(
                    requestUri="u?comp=page",
                    headers=[{"headerName": "x-ms-range", "headerValue": "bytes=0-1"}],
                    content="e30=",
                )
            },
            400,  # page write before create
        ),
        (
            "PUT",
            "/status",
            {
                "data": envelope(
                    requestUri="u?comp=page",
                    headers=[{"headerName": "x-ms-range", "headerValue": "bytes=0-1"}],
                )
            },
            400,
        ),
        ("GET", "/extensionArtifact", {}, 400),
        (
            "GET",
            "/extensionArtifact",
            {"headers": {"x-ms-artifact-location": "http://[::1/x"}},
            400,
        ),
        (
            "GET",
            "/extensionArtifact",
            {"headers": {"x-ms-artifact-location": f"http://{FABRIC_IP}:99999/x"}},
            400,
        ),
    ],
)
def test_malformed_requests_get_4xx(
    client: Client, method: str, path: str, kwargs: dict[str, object], expected: int
) -> None:
    kwargs = dict(kwargs)
    kwargs.setdefault("environ_overrides", as_vm())
    response = client.open(path, method=method, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == expected, response.data
    assert client.get("/versions", environ_overrides=as_vm()).status_code == 200


def test_page_blob_with_undecodable_content_is_400(client: Client) -> None:
    create, *_ = page_envelopes(b"x" * 10)
    assert client.put("/status", data=create, environ_overrides=as_vm()).status_code == 200
    bad_page = envelope(
        requestUri=STATUS_URL + "&comp=page",
        headers=[{"headerName": "x-ms-range", "headerValue": "bytes=0-511"}],
        content=base64.b64encode(b"\x00" * 512).decode(),
    )
    assert client.put("/status", data=bad_page, environ_overrides=as_vm()).status_code == 400
