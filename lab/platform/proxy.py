"""The organisation's HTTP proxy, as the lab stands it in: Debian's tinyproxy on the fabric.

Microsoft's fix for "the VM has no internet/storage access" (FACTS.md §1 cause 1) is
either to allow storage in the NSG or to "route HTTP through a proxy": the VM's agent and
the VMSnapshot extension send their storage calls to ``HttpProxy.Host:HttpProxy.Port``
from ``/etc/waagent.conf``, and the proxy — which the NSG allows — reaches storage for
them. In the lab the fabric runs that proxy: it is on the lab network (a guest may
always reach its host, as on Azure), and storage's blocking rule only concerns the
guests' own addresses, so calls relayed by the proxy get through.

tinyproxy is the real thing (a Debian package in the fabric image); this module only
renders its configuration and command line, and :mod:`lab.platform.fabric_main` keeps
it running. Guests find it by name: dnsmasq answers :data:`PROXY_HOST` with the
fabric's address, as a customer's DNS answers for the corporate proxy.
:class:`PublicArtifacts` lets what the proxy relays from the fabric's artifact store
through, as Azure's public extension storage would.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.wrappers import Response

from lab.platform.guest_state import Fabric

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

PROXY_HOST = "proxy.snaplab.internal"
PROXY_PORT = 3128
DEFAULT_CONF = "/etc/snaplab/tinyproxy.conf"
DEFAULT_LOG_FILE = "/var/log/snaplab/tinyproxy.log"
# A snapshot PUT answers in well under a second; a minute covers a slow Azurite.
IDLE_TIMEOUT_SECONDS = 60


def tinyproxy_conf(
    subnet: str,
    *,
    port: int = PROXY_PORT,
    log_file: str = DEFAULT_LOG_FILE,
    timeout: int = IDLE_TIMEOUT_SECONDS,
) -> str:
    """tinyproxy's configuration: forward proxy for the lab subnet only, logged to a file.

    Only the lab's own subnet may use it (``Allow``), as a corporate proxy serves only
    its own network. No ``Listen``: it answers on every fabric address, so a guest that
    learnt a new host address after a redeploy still reaches it by name. No
    ``ConnectPort`` list: storage calls in the lab are plain HTTP, and nothing else is
    reachable from the lab network anyway. The ``Via`` header stays on, as a real
    proxy's does, so storage logs show the calls came through the proxy.
    """
    network = ipaddress.IPv4Network(subnet, strict=False)
    if not 0 < port < 65536:
        raise ValueError(f"proxy port {port} is not a TCP port")
    if timeout <= 0:
        raise ValueError(f"proxy timeout must be positive, got {timeout}")
    return "\n".join(
        [
            "# snaplab: the HTTP proxy of this lab (rendered by lab.platform.proxy)",
            f"Port {port}",
            f"Timeout {timeout}",
            f'LogFile "{log_file}"',
            "LogLevel Info",
            "MaxClients 64",
            f"Allow {network}",
            'ViaProxyName "snaplab-proxy"',
            "",
        ]
    )


def tinyproxy_argv(conf_path: str = DEFAULT_CONF, executable: str = "tinyproxy") -> list[str]:
    """Foreground (``-d``) so the fabric's supervisor sees it exit."""
    return [executable, "-d", "-c", conf_path]


class PublicArtifacts:
    """WSGI middleware on the WireServer: ``/artifacts/`` answers any lab address.

    On Azure, extension manifests and handler packages live in public blob storage, so
    a VM whose agent has ``HttpProxy.*`` set fetches them *through its proxy* and gets
    them. In the lab they are served by the WireServer, which answers only roster
    guests (by source address, as Azure's WireServer does) — and a relayed download
    arrives from the proxy's address, the fabric's own. So downloads of ``/artifacts/``
    from any other address of the lab subnet are answered here, read-only, from the
    same artifact store; everything else (and every guest's own request) goes to the
    WireServer unchanged.
    """

    PREFIX = "/artifacts/"

    def __init__(self, app: WSGIApplication, fabric: Fabric) -> None:
        self.app = app
        self.fabric = fabric

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        source = environ.get("REMOTE_ADDR")
        if not path.startswith(self.PREFIX) or not self._relay(source):
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        artifact = self.fabric.artifacts.get(path)
        if artifact is None:
            response = Response(f"no artifact at {path}\n", status=404)
        else:
            response = Response(artifact.data, status=200, content_type=artifact.content_type)
        return response(environ, start_response)

    def _relay(self, source: str | None) -> bool:
        """A lab address that is not a guest: the proxy (any other would be refused)."""
        if source is None or self.fabric.guest_for_ip(source) is not None:
            return False
        try:
            address = ipaddress.IPv4Address(source)
        except ValueError:
            return False
        return address in ipaddress.IPv4Network(self.fabric.roster.subnet, strict=False)
