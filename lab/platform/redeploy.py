"""A redeploy, platform side: the VM's host now answers as the WireServer at a new address.

FACTS.md §1 cause 4e: a guest with DHCP disabled gets no "host/fabric address" from
option 245. The address only matters when it changes — a VM redeployed to another host
of a classic deployment met a WireServer at another address, and only DHCP told it
where. The lab's stand-in for that host move, all inside the lab's own fabric container
(so it touches no other lab, and goes away with the lab):

1. the fabric takes the new address on its lab interface (``ip addr add``);
2. every URL it hands out (goal state, ExtensionsConfig, manifests, status blob) is
   rebased on the new address, and each VM gets a new goal state, as after a redeploy;
3. DHCP answers with the new address in option 245 (and as router for IMDS, and as DNS
   server, both of which Azure also serves from the WireServer address);
4. the redeployed VM no longer reaches the WireServer and HostGAPlugin at the old
   address: a REJECT rule in the fabric answers its connections there with "host
   unreachable", what a vanished host gives.

:class:`WireServerMover` does it (and undoes it); :class:`RedeployRoutes` exposes it on
the control API as ``POST``/``DELETE /control/v1/vms/<name>/redeploy``. The VM itself is
untouched: whether its agent finds the new address is up to the guest's DHCP.

The fabric's objects (:class:`~lab.platform.guest_state.Fabric`, its artifact store)
are rebased through their public attributes; the HostGAPlugin's artifact proxy still
only serves URLs on the roster's address, so after a move guests fetch handler
packages directly from the WireServer (which the real agent tries first).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from lab.platform.guest_state import Fabric
from lab.platform.http_util import BodyTooLarge, read_body
from lab.platform.roster import HOSTPLUGIN_PORT, WIRESERVER_PORT

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

Run = Callable[..., "subprocess.CompletedProcess[str]"]
RULE_COMMENT = "snaplab-redeploy"
MAX_BODY = 4096
# The address a redeployed host answers at when the caller names none: the last one
# below the guests (.10 and up), clear of the gateway, fabric and storage (.1-.3).
NEW_HOST_OFFSET = 9


class RedeployError(ValueError):
    """The move cannot be done (bad address, unknown VM, a command failed)."""


def new_host_address(subnet: str) -> str:
    """The default new WireServer address of a lab subnet."""
    return str(ipaddress.IPv4Network(subnet, strict=False).network_address + NEW_HOST_OFFSET)


def reject_rule(vm_ip: str, old_ip: str, vm: str) -> list[str]:
    """The iptables rule spec (after ``-I INPUT``/``-D INPUT``) that hides the old host."""
    return [
        "-s",
        f"{vm_ip}/32",
        "-d",
        f"{old_ip}/32",
        "-p",
        "tcp",
        "-m",
        "multiport",
        "--dports",
        f"{WIRESERVER_PORT},{HOSTPLUGIN_PORT}",
        "-m",
        "comment",
        "--comment",
        f"{RULE_COMMENT}:{vm}",
        "-j",
        "REJECT",
        "--reject-with",
        "icmp-host-unreachable",
    ]


class WireServerMover:
    """Moves the lab's WireServer address; ``restart_dhcp(address)`` re-renders dnsmasq."""

    def __init__(
        self,
        fabric: Fabric,
        artifacts_dir: Path,
        restart_dhcp: Callable[[str], None],
        *,
        interface: str = "eth0",
        run: Run = subprocess.run,
    ) -> None:
        self.fabric = fabric
        self.artifacts_dir = artifacts_dir
        self.restart_dhcp = restart_dhcp
        self.interface = interface
        self.run = run
        self.original = fabric.roster.fabric_ip
        self.current = self.original
        self._extra: set[str] = set()  # addresses added to the interface by moves
        self._hidden: dict[str, list[str]] = {}  # vm -> addresses it can no longer reach
        self._lock = threading.Lock()

    def move(self, vm: str, new_ip: str) -> dict[str, str]:
        """Redeploy ``vm``: the WireServer answers at ``new_ip``, not where it was before."""
        with self._lock:
            guest = self._guest_ip(vm)
            self._check_address(new_ip)
            old = self.current
            if new_ip != old:
                if new_ip != self.original and new_ip not in self._extra:
                    self._ip("addr", "add", self._with_prefix(new_ip), "dev", self.interface)
                    self._extra.add(new_ip)
                self._rebase(new_ip)
                self.restart_dhcp(new_ip)
            self._unhide(vm, guest)
            stale = sorted(({self.original} | self._extra) - {new_ip})
            for address in stale:
                self._iptables("-I", reject_rule(guest, address, vm))
            self._hidden[vm] = stale
            log.info("redeploy of %s: WireServer %s -> %s", vm, old, new_ip)
            return {"vm": vm, "wireserver_ip": new_ip, "previous_wireserver_ip": old}

    def undo(self, vm: str) -> dict[str, str]:
        """Back to the lab's original address, and ``vm`` reaches it again."""
        with self._lock:
            guest = self._guest_ip(vm)
            old = self.current
            self._unhide(vm, guest)
            if old != self.original:
                self._rebase(self.original)
                self.restart_dhcp(self.original)
            if not self._hidden:
                for address in sorted(self._extra):
                    self._ip("addr", "del", self._with_prefix(address), "dev", self.interface)
                self._extra.clear()
            log.info("redeploy of %s undone: WireServer %s -> %s", vm, old, self.original)
            return {"vm": vm, "wireserver_ip": self.original, "previous_wireserver_ip": old}

    def _unhide(self, vm: str, guest: str) -> None:
        for address in self._hidden.pop(vm, []):
            self._iptables("-D", reject_rule(guest, address, vm))

    # ------------------------------------------------------------------ steps

    def _guest_ip(self, vm: str) -> str:
        entry = self.fabric.roster.guest_by_name(vm)
        if entry is None:
            raise RedeployError(f"no VM named {vm!r} in lab {self.fabric.roster.lab!r}")
        return entry.ip

    def _check_address(self, ip: str) -> None:
        roster = self.fabric.roster
        network = ipaddress.IPv4Network(roster.subnet, strict=False)
        try:
            address = ipaddress.IPv4Address(ip)
        except ValueError as exc:
            raise RedeployError(f"not an IPv4 address: {ip!r}") from exc
        taken = {roster.storage_ip, *(g.ip for g in roster.guests)}
        if address not in network or address in (network.network_address, network[1]):
            raise RedeployError(f"{ip} is not a free host address of {network}")
        if ip in taken or address == network.broadcast_address:
            raise RedeployError(f"{ip} is already used in lab {roster.lab!r}")

    def _with_prefix(self, ip: str) -> str:
        return f"{ip}/{ipaddress.IPv4Network(self.fabric.roster.subnet, strict=False).prefixlen}"

    def _rebase(self, ip: str) -> None:
        """Every URL the fabric hands out now names ``ip``; each VM gets a new goal state."""
        fabric = self.fabric
        fabric.base_url = f"http://{ip}"
        fabric.artifacts.base_url = fabric.base_url
        if self.artifacts_dir.is_dir():
            fabric.artifacts.load_directory(self.artifacts_dir)
        fabric.ga_family_manifests = {
            family: fabric.artifacts.publish_ga_family(family)
            for family in fabric.ga_family_manifests
        }
        self.current = ip
        for guest in fabric.guests():
            handlers = guest.handlers()
            for handler in handlers:
                rebased = replace(handler, manifest_url=fabric.artifacts.manifest_url(handler.name))
                guest.set_handler(rebased, bump=False)
            guest.bump()

    def _ip(self, *args: str) -> None:
        done = self.run(["ip", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0 and "exists" not in (done.stderr or "").lower():
            raise RedeployError(f"ip {' '.join(args)}: {(done.stderr or '').strip()}")

    def _iptables(self, action: str, spec: list[str]) -> None:
        done = self.run(
            ["iptables", "-w", action, "INPUT", *spec], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RedeployError(f"iptables {action}: {(done.stderr or '').strip()}")


class RedeployRoutes:
    """WSGI middleware on the control app: ``/control/v1/vms/<name>/redeploy``.

    ``POST`` with ``{"wireserver_ip": "a.b.c.d"}`` (or ``{}`` for the lab's default new
    address) moves the WireServer; ``DELETE`` moves it back. Answers
    ``{"vm", "wireserver_ip", "previous_wireserver_ip"}``; 400 for a bad body or
    address, 404 for an unknown VM. Every other request goes to the wrapped app.
    """

    def __init__(self, app: WSGIApplication, mover: WireServerMover) -> None:
        self.app = app
        self.mover = mover

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        segments = [s for s in environ.get("PATH_INFO", "").split("/") if s]
        if len(segments) != 5 or segments[:3] != ["control", "v1", "vms"]:
            return self.app(environ, start_response)
        if segments[4] != "redeploy":
            return self.app(environ, start_response)
        response = self._handle(Request(environ), segments[3])
        return response(environ, start_response)

    def _handle(self, request: Request, vm: str) -> Response:
        if self.mover.fabric.guest(vm) is None:
            return _json({"error": f"no VM named {vm!r}"}, 404)
        try:
            if request.method == "DELETE":
                return _json(self.mover.undo(vm))
            if request.method != "POST":
                response = _json({"error": "method not allowed; use POST or DELETE"}, 405)
                response.headers["Allow"] = "POST, DELETE"
                return response
            body = _body(request)
            address = body.get("wireserver_ip") or new_host_address(self.mover.fabric.roster.subnet)
            if not isinstance(address, str):
                return _json({"error": "wireserver_ip must be a string"}, 400)
            return _json(self.mover.move(vm, address))
        except RedeployError as exc:
            return _json({"error": str(exc)}, 400)


def _body(request: Request) -> dict[str, Any]:
    try:
        raw = read_body(request, MAX_BODY)
    except BodyTooLarge as exc:
        raise RedeployError(str(exc)) from exc
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RedeployError(f"request body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise RedeployError("request body must be a JSON object")
    return payload


def _json(payload: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(payload, sort_keys=True), status=status, content_type="application/json"
    )
