"""The lab's HTTP proxy: tinyproxy's configuration and command line."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from lab.platform import fabric_main
from lab.platform.guest_state import Fabric
from lab.platform.proxy import PROXY_PORT, PublicArtifacts, tinyproxy_argv, tinyproxy_conf
from tests.unit.fabric_samples import FABRIC_IP, VM1_IP, make_roster


def directives(conf: str) -> dict[str, str]:
    pairs = (line.split(" ", 1) for line in conf.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_conf_serves_only_the_lab_subnet_on_every_address() -> None:
    conf = directives(tinyproxy_conf("10.213.3.0/24"))
    assert conf["Port"] == str(PROXY_PORT)
    assert conf["Allow"] == "10.213.3.0/24"
    assert "Listen" not in conf  # the old and a redeployed host address alike
    assert conf["LogFile"] == '"/var/log/snaplab/tinyproxy.log"'
    assert int(conf["Timeout"]) > 0


def test_conf_normalises_and_checks_its_input() -> None:
    assert directives(tinyproxy_conf("10.213.3.7/24"))["Allow"] == "10.213.3.0/24"
    with pytest.raises(ValueError):
        tinyproxy_conf("not-a-subnet")
    with pytest.raises(ValueError):
        tinyproxy_conf("10.0.0.0/24", port=0)
    with pytest.raises(ValueError):
        tinyproxy_conf("10.0.0.0/24", timeout=0)


def test_argv_runs_in_the_foreground() -> None:
    assert tinyproxy_argv("/etc/x.conf") == ["tinyproxy", "-d", "-c", "/etc/x.conf"]


class _Storage(BaseHTTPRequestHandler):
    """Answers a snapshot PUT as blob storage does, recording what arrived."""

    seen: ClassVar[list[tuple[str, str, str | None]]] = []

    def do_PUT(self) -> None:
        _Storage.seen.append((self.command, self.path, self.headers.get("Via")))
        self.send_response(201)
        self.send_header("x-ms-snapshot", "2026-11-28T00:00:00.0000000Z")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def storage() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Storage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


def _artifacts_client() -> tuple[Client, list[str]]:
    fabric = Fabric(make_roster(), stale_after_seconds=20.0)
    fabric.artifacts.put("extensions/H/manifest.xml", b"<PluginVersionManifest/>", "text/xml")
    passed: list[str] = []

    def wireserver(environ: Any, start_response: Any) -> Any:
        passed.append(f"{environ['REMOTE_ADDR']} {environ['PATH_INFO']}")
        return Response("wireserver", status=403)(environ, start_response)

    return Client(PublicArtifacts(wireserver, fabric)), passed


def test_artifacts_relayed_by_the_proxy_are_served() -> None:
    """The proxy on the fabric relays a manifest download: it is answered, not refused."""
    client, passed = _artifacts_client()
    relayed = client.get(
        "/artifacts/extensions/H/manifest.xml", environ_base={"REMOTE_ADDR": FABRIC_IP}
    )
    assert relayed.status_code == 200 and relayed.data == b"<PluginVersionManifest/>"
    assert relayed.headers["Content-Type"].startswith("text/xml")
    missing = client.get("/artifacts/nothing", environ_base={"REMOTE_ADDR": FABRIC_IP})
    assert missing.status_code == 404
    assert passed == []


def test_everything_else_reaches_the_wireserver_unchanged() -> None:
    client, passed = _artifacts_client()
    client.get("/artifacts/extensions/H/manifest.xml", environ_base={"REMOTE_ADDR": VM1_IP})
    client.get("/machine?comp=goalstate", environ_base={"REMOTE_ADDR": FABRIC_IP})
    client.get("/artifacts/extensions/H/manifest.xml", environ_base={"REMOTE_ADDR": "8.8.8.8"})
    client.put("/artifacts/extensions/H/manifest.xml", environ_base={"REMOTE_ADDR": FABRIC_IP})
    assert passed == [
        f"{VM1_IP} /artifacts/extensions/H/manifest.xml",  # a guest: the WireServer's rules
        f"{FABRIC_IP} /machine",
        "8.8.8.8 /artifacts/extensions/H/manifest.xml",  # not the lab's network
        f"{FABRIC_IP} /artifacts/extensions/H/manifest.xml",  # not a download
    ]


def test_fabric_runs_no_proxy_without_tinyproxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    conf = tmp_path / "tinyproxy.conf"
    assert fabric_main.start_proxy(make_roster(), conf, threading.Event()) is None
    assert not conf.exists()


def test_fabric_answers_the_lab_names_with_its_own_address() -> None:
    names = fabric_main.lab_names(make_roster())
    assert names == {
        "debian-mirror.snaplab.internal": FABRIC_IP,
        "proxy.snaplab.internal": FABRIC_IP,
    }
