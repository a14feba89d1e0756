"""Run the ARM twin: ``python3 -m lab.platform.arm.main``.

The twin's container uses host networking, so it listens on 127.0.0.1 only: the SDK on
the Docker host can reach it, nothing outside this machine can. Configuration comes from
the environment the provisioner sets on the container:

==================== ========================================================
SNAPLAB_FABRIC_URL   base URL of the fabric's control API, e.g. http://10.0.0.2:8080
SNAPLAB_FABRIC_TOKEN the lab's control token (the fabric refuses requests without it)
SNAPLAB_ARM_PORT     TCP port on 127.0.0.1
SNAPLAB_ARM_TOKEN    the only bearer token accepted
SNAPLAB_TLS_CERT     server certificate (PEM) signed by the lab CA
SNAPLAB_TLS_KEY      its private key (PEM)
==================== ========================================================

The Docker engine's socket must be mounted: for power operations (``DockerPower``) and
for the host's watch over the guests (:class:`~lab.platform.host_power.HostWatcher`,
which reports a guest OS that halted and resets one that rebooted), which runs beside
the twin in this process.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from lab.platform.arm.app import ArmTwin
from lab.platform.arm.fabric import FabricError
from lab.platform.arm.network_firewall import HostIptables
from lab.platform.arm.network_store import NsgStore
from lab.platform.arm.power import DockerPower
from lab.platform.arm.recovery_services_fabric import HttpBackupFabric
from lab.platform.host_power import DockerGuests, HostWatcher

LISTEN_ADDRESS = "127.0.0.1"
# The NSG rules the twin holds in the host firewall (kept across a restart of its container).
NSG_STATE = Path("/var/lib/snaplab/arm/network.json")

_log = logging.getLogger("lab.platform.arm.main")


class ConfigError(Exception):
    """The environment does not describe a runnable twin."""


@dataclass(frozen=True)
class TwinConfig:
    """Everything the twin needs to start, read once from the environment."""

    fabric_url: str
    fabric_token: str
    port: int
    token: str
    tls_cert: Path
    tls_key: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TwinConfig:
        def need(name: str) -> str:
            value = env.get(name, "").strip()
            if not value:
                raise ConfigError(f"{name} is not set")
            return value

        raw_port = need("SNAPLAB_ARM_PORT")
        try:
            port = int(raw_port)
        except ValueError as exc:
            raise ConfigError(f"SNAPLAB_ARM_PORT must be a number, got {raw_port!r}") from exc
        if not 0 < port < 65536:
            raise ConfigError(f"SNAPLAB_ARM_PORT out of range: {port}")
        return cls(
            fabric_url=need("SNAPLAB_FABRIC_URL"),
            fabric_token=need("SNAPLAB_FABRIC_TOKEN"),
            port=port,
            token=need("SNAPLAB_ARM_TOKEN"),
            tls_cert=Path(need("SNAPLAB_TLS_CERT")),
            tls_key=Path(need("SNAPLAB_TLS_KEY")),
        )


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server-side TLS context for the twin's certificate (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    return context


def build_server(app: ArmTwin, port: int, context: ssl.SSLContext) -> BaseWSGIServer:
    """A threaded HTTPS server for ``app`` on 127.0.0.1 (port 0 picks a free port).

    Threaded because the SDK polls an operation while the power change runs.
    """
    return make_server(
        LISTEN_ADDRESS,
        port,
        app,
        threaded=True,
        ssl_context=context,
        request_handler=ArmRequestHandler,
    )


class ArmRequestHandler(WSGIRequestHandler):
    """One ``Date`` header per answer, as ARM sends: the application's when it sets one
    (the Recovery Services provider stamps the lab's Azure clock, so a script reads the
    platform's time as it would Azure's), else the host's now. Python's handler would
    add its own beside the application's."""

    _dated = False

    def send_response(self, code: int, message: str | None = None) -> None:
        self._dated = False
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Server", self.version_string())

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "date":
            self._dated = True
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        if not self._dated:
            super().send_header("Date", self.date_time_string())
        super().end_headers()


def serve_until_signalled(server: BaseWSGIServer) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting and return.

    ``shutdown()`` must not run on the thread inside ``serve_forever()``, so the server
    runs on a worker thread and the main thread only waits for the signal.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker = threading.Thread(target=server.serve_forever, name="arm-twin", daemon=True)
    worker.start()
    stop.wait()
    server.shutdown()
    server.server_close()
    worker.join(timeout=5)


def main(env: Mapping[str, str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # we log each request ourselves
    try:
        config = TwinConfig.from_env(os.environ if env is None else env)
        context = tls_context(config.tls_cert, config.tls_key)
    except (ConfigError, OSError, ssl.SSLError) as exc:
        _log.error("cannot start the ARM twin: %s", exc)
        return 2
    fabric = HttpBackupFabric(config.fabric_url, token=config.fabric_token)
    app = ArmTwin(
        fabric,
        DockerPower(),
        config.token,
        backup=fabric,
        publisher=fabric,
        nsg_store=NsgStore(NSG_STATE),
        nsg_firewall=HostIptables,
    )
    watcher = HostWatcher(fabric, DockerGuests(), app.power_locks, fabric_errors=(FabricError,))
    try:
        server = build_server(app, config.port, context)
    except OSError as exc:
        _log.error("cannot listen on %s:%d: %s", LISTEN_ADDRESS, config.port, exc)
        return 1
    _log.info(
        "ARM twin on https://%s:%d (fabric %s)", LISTEN_ADDRESS, config.port, config.fabric_url
    )
    stop_watch = threading.Event()
    watcher.start(stop_watch)
    serve_until_signalled(server)
    stop_watch.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
