"""Test doubles for the VMSnapshot handler tests, and tests of the doubles themselves.

- :class:`FakeStorage`: an Azurite-like blob endpoint on 127.0.0.1 (``HEAD`` gives a
  disk's length, ``PUT ?comp=snapshot`` answers 201 + ``x-ms-snapshot``, a BlockBlob
  ``PUT`` answers 201 and keeps the body); any path can be told to fail.
- :class:`RecordingProxy`: a forward HTTP proxy on 127.0.0.1 that records the
  absolute-form request lines it relays.
- :class:`GuestLayout`: a guest root in a temp dir laid out like the real one
  (``/var/lib/waagent/<Handler>-<version>/`` with ``HandlerEnvironment.json``,
  ``config/``, ``status/``; ``/var/log/azure/<Handler>/``; ``/etc/azure``), with
  helpers to write settings and read the status.
"""

from __future__ import annotations

import http.client
import http.server
import io
import json
import os
import threading
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lab.extension import protocol
from lab.extension.handler.main.vmsnapshot.handlerenv import HandlerContext
from lab.extension.handler.main.vmsnapshot.paths import GuestPaths
from lab.extension.package import build_handler_zip

GIB = 1 << 30
VERSION = protocol.LATEST_VERSION


@dataclass
class Recorded:
    method: str
    target: str  # the request target as sent (origin-form path, or absolute URI via a proxy)
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


def lower(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers}


@dataclass
class Failure:
    status: int
    body: str = ""
    error_code: str = "InternalError"
    method: str | None = None  # None: every method on the path fails


@dataclass
class StorageState:
    sizes: dict[str, int] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)
    snapshots: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _StorageHandler(http.server.BaseHTTPRequestHandler):
    server: _StorageServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _record(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Recorded(self.command, self.path, lower(self.headers.items()), body)
        with self.server.state.lock:
            self.server.state.requests.append(seen)
        return seen

    def _answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _failed(self, seen: Recorded) -> bool:
        failure = self.server.state.failures.get(seen.path)
        if failure is None or failure.method not in (None, seen.method):
            return False
        body = f"<?xml version='1.0'?><Error><Message>{failure.body}</Message></Error>"
        self._answer(failure.status, {"x-ms-error-code": failure.error_code}, body.encode())
        return True

    def do_HEAD(self) -> None:
        seen = self._record()
        if self._failed(seen):
            return
        size = self.server.state.sizes.get(seen.path, GIB)
        self._answer(200, {"Content-Length": str(size), "x-ms-blob-type": "PageBlob"})

    def do_PUT(self) -> None:
        seen = self._record()
        if self._failed(seen):
            return
        state = self.server.state
        if seen.query.get("comp") == ["snapshot"]:
            with state.lock:
                taken = state.snapshots.setdefault(seen.path, [])
                stamp = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=len(taken))
                snapshot = stamp.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
                taken.append(snapshot)
            self._answer(201, {"x-ms-snapshot": snapshot})
            return
        with state.lock:
            state.blobs[seen.path] = seen.body
        self._answer(201, {})


class _StorageServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StorageState) -> None:
        super().__init__(("127.0.0.1", 0), _StorageHandler)
        self.state = state


class FakeStorage:
    """An Azurite-like blob endpoint in a thread; use as a context manager."""

    def __init__(self) -> None:
        self.state = StorageState()
        self._server = _StorageServer(self.state)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.02)

    def __enter__(self) -> FakeStorage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def sas(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?sv=2019-02-02&sr=b&sp=rw&sig=fake"

    def disk(self, name: str, size: int = GIB) -> str:
        path = f"/devstoreaccount1/vhds/{name}"
        self.state.sizes[path] = size
        return self.sas(path)

    def fail(self, path_or_url: str, failure: Failure) -> None:
        self.state.failures[urlsplit(path_or_url).path] = failure

    def requests(self, method: str | None = None) -> list[Recorded]:
        with self.state.lock:
            return [r for r in self.state.requests if method in (None, r.method)]

    def snapshot_puts(self) -> list[Recorded]:
        return [r for r in self.requests("PUT") if r.query.get("comp") == ["snapshot"]]

    def blob(self, url: str) -> bytes | None:
        with self.state.lock:
            return self.state.blobs.get(urlsplit(url).path)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.seen.append(
                Recorded(self.command, self.path, lower(self.headers.items()), body)
            )
        target = urlsplit(self.path)
        if not target.hostname:
            self.send_error(400, "not a proxy request")
            return
        upstream = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        upstream.request(self.command, path, body=body or None, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_HEAD = do_PUT = do_GET = _relay


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[Recorded] = []
        self.lock = threading.Lock()


class RecordingProxy:
    def __init__(self) -> None:
        self._server = _ProxyServer()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.02)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def seen(self) -> list[Recorded]:
        with self._server.lock:
            return list(self._server.seen)


def install_handler(handler_dir: Path, version: str) -> None:
    """Unzip the handler package where the agent would, keeping the scripts' modes."""
    with zipfile.ZipFile(io.BytesIO(build_handler_zip(version))) as archive:
        for info in archive.infolist():
            target = handler_dir / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(info))
            target.chmod((info.external_attr >> 16) & 0o777)


class GuestLayout:
    """A guest's file system under ``root`` as the agent leaves it for the handler."""

    def __init__(self, root: Path, version: str = VERSION) -> None:
        self.root = root
        self.handler_dir = root / "var/lib/waagent" / f"{protocol.HANDLER_NAME}-{version}"
        self.log_folder = root / "var/log/azure" / protocol.HANDLER_NAME
        install_handler(self.handler_dir, version)
        for folder in (self.handler_dir / "config", self.handler_dir / "status", self.log_folder):
            folder.mkdir(parents=True, exist_ok=True)
        (root / "etc/azure").mkdir(parents=True, exist_ok=True)
        environment = [
            {
                "name": protocol.HANDLER_NAME,
                "version": 1.0,
                "handlerEnvironment": {
                    "logFolder": str(self.log_folder),
                    "configFolder": str(self.handler_dir / "config"),
                    "statusFolder": str(self.handler_dir / "status"),
                    "heartbeatFile": str(self.handler_dir / "heartbeat.log"),
                    "eventsFolder": str(self.log_folder / "events"),
                },
            }
        ]
        (self.handler_dir / "HandlerEnvironment.json").write_text(json.dumps(environment))

    @property
    def paths(self) -> GuestPaths:
        return GuestPaths(root=self.root, trusted_uid=os.getuid())

    @property
    def env(self) -> dict[str, str]:
        """What a test's handler process sees: the fake root, its own uid trusted."""
        return {"VMSNAPSHOT_ROOT": str(self.root), "VMSNAPSHOT_TRUSTED_UID": str(os.getuid())}

    def context(self) -> HandlerContext:
        return HandlerContext.load(self.handler_dir, {})

    def write_settings(
        self,
        seq: int,
        public: dict[str, Any] | None,
        protected: Any,
        thumbprint: str | None = None,
    ) -> Path:
        document = {
            "runtimeSettings": [
                {
                    "handlerSettings": {
                        "publicSettings": public,
                        "protectedSettings": protected,
                        "protectedSettingsCertThumbprint": thumbprint,
                    }
                }
            ]
        }
        path = self.handler_dir / "config" / f"{seq}.settings"
        path.write_text(json.dumps(document))
        return path

    def write_task(
        self,
        seq: int,
        disks: list[str],
        status_blob: str,
        *,
        task_id: str = "task-1",
        started: datetime | None = None,
        time_scale: float = 1.0,
        logs_blob: str | None = None,
    ) -> Path:
        public = protocol.PublicSettings(
            task_id=task_id,
            command_start=started or datetime.now(UTC),
            time_scale=time_scale,
        )
        protected = protocol.ProtectedSettings(tuple(disks), status_blob, logs_blob)
        return self.write_settings(seq, public.to_json(), protected.to_json())

    def status(self, seq: int) -> list[dict[str, Any]]:
        document: list[dict[str, Any]] = json.loads(
            (self.handler_dir / "status" / f"{seq}.status").read_text()
        )
        return document

    def result(self, seq: int) -> protocol.SnapshotResult:
        return protocol.SnapshotResult.from_status(self.status(seq)[0]["status"])

    def extension_log(self) -> str:
        path = self.log_folder / "extension.log"
        return path.read_text() if path.exists() else ""

    def write_etc(self, name: str, text: str, mode: int = 0o600) -> Path:
        path = self.root / "etc" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        return path


# --- the doubles themselves


def test_fake_storage_answers_like_blob_storage() -> None:
    with FakeStorage() as storage:
        url = storage.disk("vm1-os.vhd", 3 * GIB)
        head = urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5)
        assert head.headers["Content-Length"] == str(3 * GIB)
        put = urllib.request.Request(url + "&comp=snapshot", data=b"", method="PUT")
        with urllib.request.urlopen(put, timeout=5) as response:
            assert response.status == 201
            assert response.headers["x-ms-snapshot"].startswith("2030-01-01T")
        assert [r.method for r in storage.requests()] == ["HEAD", "PUT"]


def test_recording_proxy_relays_and_records_absolute_targets() -> None:
    with FakeStorage() as storage, RecordingProxy() as proxy:
        url = storage.disk("vm1-os.vhd")
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy.port}"})
        )
        with opener.open(urllib.request.Request(url, method="HEAD"), timeout=5) as response:
            assert response.status == 200
        assert proxy.seen[0].target == url
        assert storage.requests("HEAD")[0].target.startswith("/devstoreaccount1/")
