"""Entry point of the fabric container: ``python3 -m lab.platform.fabric_main``.

Runs, in one process, everything a lab's guests see of "Azure": dnsmasq (supervised,
restarted if it dies, since a guest without DHCP answers is a fault we inject on
purpose, never by accident), the WireServer on :80, the HostGAPlugin on :32526 and the
control API on :8080, all over one shared :class:`~lab.platform.guest_state.Fabric`.
The control API answers only requests that carry the lab's token (``SNAPLAB_CONTROL_TOKEN``
in this process's environment, see :mod:`lab.platform.control_auth`): without one the
fabric does not start.
IMDS is answered by the WireServer app once 169.254.169.254 is on ``lo``.

It also stands in for two things a VM reaches besides its host: the Debian mirror that
Azure images point apt at (:mod:`lab.platform.package_mirror`, on :data:`MIRROR_PORT`)
and an organisation's HTTP proxy (Debian's tinyproxy, :mod:`lab.platform.proxy`,
supervised like dnsmasq). dnsmasq answers their names in DNS. The control API also
takes a VM's redeploy (:mod:`lab.platform.redeploy`), which moves the WireServer.

It also runs the backup service (:mod:`lab.platform.backup`): at start it writes and
publishes the VMSnapshot handler zips, fails jobs a previous run left InProgress, and
creates the VMs' disks in Azurite in a background thread that waits for storage.

Each request is logged as one line (source, method, path, status) to stdout and to
``/var/log/snaplab/fabric.log``: during a drill that log is how a trainer sees which
calls a broken guest stopped making. SIGTERM stops everything and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, make_server

from lab.extension.package import write_handler_zips
from lab.extension.run_command_package import write_run_command_zips
from lab.platform import fabric_firewall
from lab.platform.backup.agent import FabricAgentChannel
from lab.platform.backup.azure_storage import AzuriteStorage, account_url_for
from lab.platform.backup.provisioner import StorageProvisioner
from lab.platform.backup.service import BackupService
from lab.platform.backup.store import DEFAULT_DB_PATH, BackupStore
from lab.platform.control import ControlApp
from lab.platform.control_auth import TOKEN_ENV, RequireToken, TokenError, check_token
from lab.platform.control_extensions import ExtensionRoutes
from lab.platform.dhcp import DEFAULT_LEASE_FILE, dnsmasq_argv
from lab.platform.guest_state import DEFAULT_POWER_FILE, Fabric
from lab.platform.hostplugin import HostPluginApp
from lab.platform.package_mirror import MIRROR_HOST, MIRROR_PORT, MIRROR_ROOT, MirrorApp
from lab.platform.proxy import DEFAULT_CONF as PROXY_CONF
from lab.platform.proxy import PROXY_HOST, PublicArtifacts, tinyproxy_argv, tinyproxy_conf
from lab.platform.redeploy import RedeployRoutes, WireServerMover
from lab.platform.roster import (
    CONTROL_PORT,
    HOSTPLUGIN_PORT,
    IMDS_ADDRESS,
    ROSTER_PATH,
    WIRESERVER_PORT,
    Roster,
)
from lab.platform.wireserver import WireServerApp

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

LOG_DIR = Path("/var/log/snaplab")
ARTIFACTS_DIR = Path("/var/lib/snaplab/artifacts")
CERT_DIR = Path("/var/lib/snaplab/certs")

log = logging.getLogger("snaplab.fabric")
request_log = logging.getLogger("snaplab.fabric.requests")


class RequestLogger:
    """WSGI middleware: one line per request, ``<service> <src> <METHOD> <path> <status>``."""

    def __init__(self, app: WSGIApplication, service: str) -> None:
        self.app = app
        self.service = service

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        status_holder: list[str] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            status_holder.append(status.split(" ", 1)[0])
            return start_response(status, headers, exc_info)

        result = self.app(environ, capture)
        path = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        request_log.info(
            "%s %s %s %s %s",
            self.service,
            environ.get("REMOTE_ADDR", "-"),
            environ.get("REQUEST_METHOD", "-"),
            f"{path}?{query}" if query else path,
            status_holder[0] if status_holder else "-",
        )
        return result


class DnsmasqSupervisor:
    """Keeps dnsmasq (or another daemon: ``name``) running; restarts it with back-off
    when it exits unexpectedly, at once when :meth:`restart_with` replaced its argv."""

    def __init__(self, argv: Sequence[str], stop: threading.Event, name: str = "dnsmasq") -> None:
        self.argv = list(argv)
        self.stop = stop
        self.name = name
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._replaced = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        delay = 1.0
        while not self.stop.is_set():
            try:
                with self._lock:
                    self._process = subprocess.Popen(self.argv)
                log.info("%s started (pid %d)", self.name, self._process.pid)
                code = self._process.wait()
            except OSError as exc:
                log.error("%s could not start: %s", self.name, exc)
                code = None
            if self.stop.is_set():
                return
            if self._replaced.is_set():
                self._replaced.clear()
                delay = 1.0
                log.info("%s restarting with a new configuration", self.name)
                continue
            log.warning("%s exited (%s); restarting in %.0f s", self.name, code, delay)
            self.stop.wait(delay)
            delay = min(delay * 2, 30.0)

    def restart_with(self, argv: Sequence[str]) -> None:
        """Run ``argv`` from now on: stop the current process; the loop starts the new one."""
        with self._lock:
            self.argv = list(argv)
            self._replaced.set()
        self.terminate()

    def terminate(self) -> None:
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


def add_loopback_address(
    address: str, run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> bool:
    """Put ``address``/32 on ``lo`` so IMDS traffic routed to us is accepted.

    An address that is already there is success (the container may have restarted).
    """
    result = run(
        ["ip", "addr", "add", f"{address}/32", "dev", "lo"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 0 or "exists" in (result.stderr or ""):
        return True
    log.error("could not add %s to lo: %s", address, (result.stderr or "").strip())
    return False


def build_apps(fabric: Fabric, backup: BackupService | None = None) -> dict[str, WSGIApplication]:
    """The three fabric apps over one shared state, keyed by service name."""
    return {
        "wireserver": WireServerApp(fabric),
        "hostplugin": HostPluginApp(fabric),
        "control": ControlApp(fabric, backup),
    }


def publish_extension_packages(fabric: Fabric, directory: Path) -> list[str]:
    """Write the VMSnapshot and Run Command handler zips into ``directory`` and serve
    every ``<Handler>__<version>.zip`` there; returns the manifest URLs.

    The zips are rebuilt from the code in this image at each start, so a guest always
    downloads the handler that matches the fabric's protocol. A failure to write them
    is logged and whatever the directory already holds is served.
    """
    try:
        for path in [*write_handler_zips(directory), *write_run_command_zips(directory)]:
            log.info("wrote handler package %s", path.name)
    except (OSError, ValueError) as exc:
        log.error("could not write the handler packages to %s: %s", directory, exc)
    if not directory.is_dir():
        return []
    # One manifest per handler, however many versions it lists.
    return list(dict.fromkeys(fabric.artifacts.load_directory(directory)))


def start_backup_service(
    fabric: Fabric, db_path: Path, storage_url: str, stop: threading.Event
) -> BackupService | None:
    """The backup service over SQLite and Azurite, its disks made in the background.

    Without its database the fabric still serves the guests (the control API then
    answers 503 for backup routes): a broken volume must not look like a guest fault.
    """
    storage = AzuriteStorage(storage_url)
    try:
        store = BackupStore(db_path)
    except (OSError, sqlite3.Error) as exc:
        log.error("backup service disabled: cannot open %s: %s", db_path, exc)
        return None
    service = BackupService(
        vms=fabric.names(),
        store=store,
        storage=storage,
        agent=FabricAgentChannel(fabric),
        clock=fabric.clock,
    )
    service.recover_interrupted()
    StorageProvisioner(storage, list(fabric.names()), stop).start()
    log.info("backup service up (jobs in %s, storage %s)", db_path, storage_url)
    return service


def lab_names(roster: Roster) -> dict[str, str]:
    """The names the lab's DNS answers: the services the fabric stands in for."""
    return {MIRROR_HOST: roster.fabric_ip, PROXY_HOST: roster.fabric_ip}


def start_proxy(roster: Roster, conf_path: Path, stop: threading.Event) -> DnsmasqSupervisor | None:
    """tinyproxy for the lab subnet, when the image has it (a unit-test host may not)."""
    if shutil.which("tinyproxy") is None:
        log.warning("tinyproxy is not installed: no HTTP proxy in this lab")
        return None
    try:
        conf_path.parent.mkdir(parents=True, exist_ok=True)
        conf_path.write_text(tinyproxy_conf(roster.subnet))
    except OSError as exc:
        log.error("cannot write %s: %s", conf_path, exc)
        return None
    supervisor = DnsmasqSupervisor(tinyproxy_argv(str(conf_path)), stop, name="tinyproxy")
    supervisor.start()
    return supervisor


def configure_logging(log_dir: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(log_dir / "fabric.log"))
        except OSError as exc:
            print(f"fabric: cannot log to {log_dir}: {exc}", file=sys.stderr)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    # Werkzeug's own access log would duplicate ours in another format.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fabric", description=__doc__.splitlines()[0])
    parser.add_argument("--roster", type=Path, default=ROSTER_PATH)
    parser.add_argument("--bind", default="0.0.0.0", help="address the three services bind")
    parser.add_argument("--wireserver-port", type=int, default=WIRESERVER_PORT)
    parser.add_argument("--hostplugin-port", type=int, default=HOSTPLUGIN_PORT)
    parser.add_argument("--control-port", type=int, default=CONTROL_PORT)
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS_DIR)
    parser.add_argument("--cert-dir", type=Path, default=CERT_DIR)
    parser.add_argument("--backup-db", type=Path, default=DEFAULT_DB_PATH)
    parser.add_argument(
        "--storage-url",
        help="Azurite blob endpoint (default: http://<roster storage_ip>:10000/devstoreaccount1)",
    )
    parser.add_argument("--no-backup", action="store_true", help="run no backup service")
    parser.add_argument("--log-dir", type=Path, default=LOG_DIR)
    parser.add_argument("--no-dhcp", action="store_true", help="do not run dnsmasq")
    parser.add_argument("--mirror-port", type=int, default=MIRROR_PORT)
    parser.add_argument("--mirror-root", type=Path, default=MIRROR_ROOT)
    parser.add_argument("--no-proxy", action="store_true", help="do not run tinyproxy")
    parser.add_argument("--proxy-conf", type=Path, default=Path(PROXY_CONF))
    parser.add_argument(
        "--no-imds-address", action="store_true", help=f"do not add {IMDS_ADDRESS} to lo"
    )
    parser.add_argument(
        "--no-firewall", action="store_true", help="add no rules to this namespace's OUTPUT"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_dir)
    try:
        control_token = check_token(os.environ.get(TOKEN_ENV))
    except TokenError as exc:
        log.error("cannot start the control API: %s", exc)
        return 2
    if not args.no_firewall:
        try:
            fabric_firewall.apply()
        except (fabric_firewall.FirewallError, OSError) as exc:
            log.error("cannot keep the proxy from relaying to the fabric itself: %s", exc)
            return 1
    roster = Roster.load(args.roster)
    fabric = Fabric(roster, cert_dir=args.cert_dir, power_file=DEFAULT_POWER_FILE)
    for url in publish_extension_packages(fabric, args.artifacts):
        log.info("serving extension manifest %s", url)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not args.no_imds_address:
        add_loopback_address(IMDS_ADDRESS)

    backup = None
    if not args.no_backup:
        storage_url = args.storage_url or account_url_for(roster.storage_ip)
        backup = start_backup_service(fabric, args.backup_db, storage_url, stop)

    names = lab_names(roster)
    supervisor = None
    if not args.no_dhcp:
        Path(DEFAULT_LEASE_FILE).parent.mkdir(parents=True, exist_ok=True)
        supervisor = DnsmasqSupervisor(dnsmasq_argv(roster, names=names), stop)

    def restart_dhcp(wireserver_ip: str) -> None:
        if supervisor is not None:
            supervisor.restart_with(dnsmasq_argv(roster, wireserver_ip=wireserver_ip, names=names))

    apps = build_apps(fabric, backup)
    mover = WireServerMover(fabric, args.artifacts, restart_dhcp)
    control = ExtensionRoutes(apps["control"], fabric)  # the twin sets handlers (CRP's part)
    apps["control"] = RequireToken(RedeployRoutes(control, mover), control_token)
    apps["wireserver"] = PublicArtifacts(apps["wireserver"], fabric)
    ports = {
        "wireserver": args.wireserver_port,
        "hostplugin": args.hostplugin_port,
        "control": args.control_port,
    }
    if args.mirror_root.is_dir():
        apps["mirror"] = MirrorApp(args.mirror_root)
        ports["mirror"] = args.mirror_port
    else:
        log.warning("no package mirror at %s: apt in the guests has no source", args.mirror_root)
    servers: list[BaseWSGIServer] = []
    try:
        for service, app in apps.items():
            servers.append(
                make_server(args.bind, ports[service], RequestLogger(app, service), threaded=True)
            )
    except OSError as exc:
        log.error("cannot bind: %s", exc)
        for server in servers:
            server.server_close()
        return 1
    for service, server in zip(apps, servers, strict=True):
        threading.Thread(target=server.serve_forever, name=service, daemon=True).start()
        log.info("%s listening on %s:%d", service, args.bind, ports[service])

    if supervisor is not None:
        supervisor.start()
    proxy = None if args.no_proxy else start_proxy(roster, args.proxy_conf, stop)

    log.info("fabric for lab %s up with %d guest(s)", roster.lab, len(roster.guests))
    while not stop.wait(1.0):
        pass

    for daemon in (supervisor, proxy):
        if daemon is not None:
            daemon.terminate()
    for server in servers:
        server.shutdown()
        server.server_close()
    log.info("fabric stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
