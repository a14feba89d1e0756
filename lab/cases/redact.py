"""Redaction: a customer's identifiers and secrets out of a case, its structure kept.

What is replaced, each by a stable placeholder (the same input gives the same placeholder
within one case, so two lines that named one host still name one host):

* private keys and certificates (PEM blocks) → ``[pem-1]``;
* SAS tokens: a URL's query string that carries ``sig=`` → ``?sas-1``, and any other
  ``sig=...`` → ``sig=sas-1``;
* secrets in settings: the values of ``protectedSettings``, passwords, secrets, keys and
  tokens (JSON ``"key": "value"`` and ``key=value``) → ``secret-1``;
* subscription ids, resource groups and resource names in Azure resource ids
  (``/subscriptions/subscription-1/resourceGroups/resource-group-1/.../resource-1``);
* host names: the VM's own (``hostname [..]``, ``<HostName>``, a ``hostname`` field,
  or given), and every host in a URL but Azure's and Microsoft's public endpoints and the
  lab's own names → ``host-1``; a storage account's name → ``storage-1``;
* IPv4 addresses outside the lab's pool, link-local, loopback and the WireServer
  168.63.129.16 → documentation addresses (``192.0.2.1``, RFC 5737), so an address stays
  an address; netmasks and version numbers are left alone (a dotted quad after
  "version"/"agent", or starting below 10 — 2.7.3.0, 1.0.92.0 — unless an address word
  such as "ip", "endpoint", "proxy" or "://" comes right before it).

:func:`redact_case` is what ``case import --redact`` and ``case export`` call; the
report counts what was replaced by kind and never holds an original value.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lab.cases.model import Case
from lab.provision.network import POOL

WIRESERVER = ipaddress.IPv4Address("168.63.129.16")
KEPT_NETWORKS = (
    POOL,
    ipaddress.IPv4Network("169.254.0.0/16"),  # link-local: IMDS, APIPA
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("192.0.2.0/24"),  # our own placeholders (RFC 5737)
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
)
PLACEHOLDER_NETWORKS = ("192.0.2.", "198.51.100.", "203.0.113.")
PUBLIC_SUFFIXES = (
    "azure.com",
    "azure.net",
    "windows.net",
    "microsoft.com",
    "azureedge.net",
    "msftauth.net",
    "debian.org",
    "ubuntu.com",
    "snaplab.internal",
)
KEPT_HOSTS = frozenset({"localhost", "metadata", "wireserver"})
STORAGE_SUFFIX = re.compile(r"^([a-z0-9]{3,24})\.((?:blob|table|queue|file|dfs)\.core\.\S+)$")

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?(?:-----END \1-----|\Z)", re.DOTALL)
_URL = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://(?P<host>[^/\s:\"'<>?#\\]+)(?P<rest>[^\s\"'<>]*)"
)
_QUERY_WITH_SIG = re.compile(r"\?(?P<query>[^\s\"'<>#]*\bsig=[^\s\"'<>#]*)")
_SIG = re.compile(r"(?i)\b(sig=)([^&\s\"'<>;]+)")
_SECRET_KEY = (
    r"protectedSettings|[A-Za-z]*[Pp]assword|[A-Za-z]*[Pp]asswd|[A-Za-z]*[Ss]ecret"
    r"|[A-Za-z]*[Pp]rivateKey|[A-Za-z]*[Aa]ccountKey|[A-Za-z]*[Aa]ccessKey|[Tt]oken"
    r"|[A-Za-z]+Token|[Ss]asUri|[Ss]torageAccountKey|ProtectedSettings"
)
_SECRET_JSON = re.compile(rf"(\"(?:{_SECRET_KEY})\"\s*:\s*\")((?:[^\"\\]|\\.)*)(\")")
_SECRET_ASSIGN = re.compile(rf"(?<![\w.])((?:{_SECRET_KEY})\s*[=:]\s*)([^\s;,&\"'<>]+)")
_SECRET_XML = re.compile(r"(<(ProtectedSettings|Password|Secret)[^>]*>)([^<]+)(</\2>)")
_RESOURCE_ID = re.compile(r"/subscriptions/[^\s\"'<>?#]+", re.IGNORECASE)
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HOSTNAME_MENTIONS = (
    re.compile(r"(?i)\bhostname \[([A-Za-z0-9][A-Za-z0-9.-]*)\]"),
    re.compile(r"<HostName>([^<\s]+)</HostName>"),
    re.compile(r"(?i)\"host_?name\"\s*:\s*\"([^\"\s]+)\""),
)
_PROXY_HOST = re.compile(r"(?m)^(\s*HttpProxy\.Host\s*=\s*)(\S+)")
_TLDS = (
    "com|net|org|io|info|biz|local|internal|corp|lan|intra|intranet|cloud|int|edu|gov|mil"
    "|de|uk|fr|nl|jp|cn|in|au|ca|br|es|it|se|ch|us|eu"
)
_FQDN = re.compile(rf"(?<![\w.@/-])((?:[a-z0-9-]+\.)+(?:{_TLDS}))(?![\w-]|\.\w)")
_IPV4 = re.compile(r"(?<![\w.-])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w-]|\.\d)")
_VERSION_CONTEXT = re.compile(r"(?i)(version|agent|ver|release|v)[\s\"':=]*$")
# Words before a dotted quad that make it an address even when it looks like a version.
_ADDRESS_CONTEXT = re.compile(
    r"(?i)(ip|address|addr|endpoint|server|host|gateway|proxy|inet|dns|nameserver|from|to|"
    r"via|src|dst|lease|route|://|@)[\s\"':=\[(]*$"
)


@dataclass
class RedactionReport:
    """What was replaced: how many distinct values of each kind, and how many times."""

    distinct: Counter[str] = field(default_factory=Counter)
    replaced: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.replaced.values())

    def lines(self) -> list[str]:
        if not self.replaced:
            return ["redaction: nothing to replace"]
        return [
            f"redacted {kind}: {self.distinct[kind]} distinct value(s), "
            f"{self.replaced[kind]} replacement(s)"
            for kind in sorted(self.replaced)
        ]

    def to_json(self) -> dict[str, dict[str, int]]:
        return {
            kind: {"distinct": self.distinct[kind], "replaced": self.replaced[kind]}
            for kind in sorted(self.replaced)
        }


class Redactor:
    """Replaces identifiers and secrets in text with stable placeholders."""

    def __init__(self, hosts: Iterable[str] = ()) -> None:
        self.report = RedactionReport()
        self._seen: dict[str, dict[str, str]] = {}
        self._hosts: set[str] = set()
        for host in hosts:
            self.add_host(host)

    def add_host(self, host: str) -> None:
        host = host.strip()
        if host and host.lower() not in KEPT_HOSTS and not _is_address(host):
            self._hosts.add(host)

    def learn_hosts(self, text: str) -> None:
        """Note the VM's host name wherever the agent's files spell it out."""
        for pattern in _HOSTNAME_MENTIONS:
            for match in pattern.finditer(text):
                self.add_host(match.group(1))

    def placeholder(self, kind: str, original: str, make: Callable[[int], str]) -> str:
        seen = self._seen.setdefault(kind, {})
        if original not in seen:
            seen[original] = make(len(seen) + 1)
            self.report.distinct[kind] += 1
        self.report.replaced[kind] += 1
        return seen[original]

    def _simple(self, kind: str, original: str) -> str:
        return self.placeholder(kind, original, lambda n: f"{kind}-{n}")

    def text(self, text: str) -> str:
        """``text`` with every identifier and secret replaced (idempotent)."""
        text = _PEM.sub(lambda m: self.placeholder("pem", m.group(0), lambda n: f"[pem-{n}]"), text)
        text = _SECRET_JSON.sub(lambda m: m.group(1) + self._secret(m.group(2)) + m.group(3), text)
        text = _SECRET_XML.sub(lambda m: m.group(1) + self._secret(m.group(3)) + m.group(4), text)
        text = _SECRET_ASSIGN.sub(lambda m: m.group(1) + self._secret(m.group(2)), text)
        text = _QUERY_WITH_SIG.sub(lambda m: "?" + self._sas(m.group("query")), text)
        text = _SIG.sub(lambda m: m.group(1) + self._sas(m.group(2)), text)
        text = _RESOURCE_ID.sub(lambda m: self._resource_id(m.group(0)), text)
        text = _URL.sub(self._url, text)
        text = _PROXY_HOST.sub(lambda m: m.group(1) + self._host(m.group(2)), text)
        text = _FQDN.sub(lambda m: self._host(m.group(1)), text)
        text = self._known_hosts(text)
        return _IPV4.sub(self._ip, text)

    def _secret(self, value: str) -> str:
        if not value or re.fullmatch(r"secret-\d+|sas-\d+|\[pem-\d+\]", value):
            return value
        return self._simple("secret", value)

    def _sas(self, value: str) -> str:
        if re.fullmatch(r"sas-\d+", value):
            return value
        return self._simple("sas", value)

    def _resource_id(self, rid: str) -> str:
        """``/subscriptions/<id>/resourceGroups/<rg>/providers/<ns>/<type>/<name>...``:
        the id, group and names replaced, the keywords, namespace and types kept."""
        parts = rid.split("/")
        index = 1
        while index + 1 < len(parts):
            key, value = parts[index].lower(), parts[index + 1]
            if key == "providers":
                index += 2  # the namespace stays
                continue
            kind = {"subscriptions": "subscription", "resourcegroups": "resource-group"}.get(
                key, "resource"
            )
            if value and not re.fullmatch(rf"{kind}-\d+", value):
                parts[index + 1] = self._simple(kind, value)
            index += 2
        return "/".join(parts)

    def _url(self, match: re.Match[str]) -> str:
        host = match.group("host")
        return f"{match.group('scheme')}://{self._host(host)}{match.group('rest')}"

    def _host(self, host: str) -> str:
        lowered = host.lower()
        if _is_address(host) or lowered in KEPT_HOSTS or re.fullmatch(r"host-\d+", lowered):
            return host
        storage = STORAGE_SUFFIX.match(lowered)
        if storage:
            if re.fullmatch(r"storage-\d+", storage.group(1)):
                return host
            return f"{self._simple('storage', storage.group(1))}.{storage.group(2)}"
        if any(lowered == s or lowered.endswith("." + s) for s in PUBLIC_SUFFIXES):
            return host
        return self._simple("host", host)

    def _known_hosts(self, text: str) -> str:
        for host in sorted(self._hosts, key=len, reverse=True):
            pattern = re.compile(rf"(?<![\w.-]){re.escape(host)}(?![\w-]|\.\w)")
            if pattern.search(text):
                text = pattern.sub(lambda _m: self._host(host), text)  # noqa: B023
        return text

    def _ip(self, match: re.Match[str]) -> str:
        original = match.group(0)
        if any(int(octet) > 255 for octet in match.groups()):
            return original
        address = ipaddress.IPv4Address(original)
        before = match.string[max(0, match.start() - 24) : match.start()]
        if (
            address == WIRESERVER
            or any(address in network for network in KEPT_NETWORKS)
            or original.startswith(("255.", "0."))
            or _VERSION_CONTEXT.search(before)
            or (int(match.group(1)) < 10 and not _ADDRESS_CONTEXT.search(before))
        ):
            return original
        return self.placeholder("ip", original, _documentation_address)


def _documentation_address(n: int) -> str:
    block, host = divmod(n - 1, 254)
    prefix = PLACEHOLDER_NETWORKS[block % len(PLACEHOLDER_NETWORKS)]
    return f"{prefix}{host + 1}"


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# Keys whose values are the case's own structure (names it chose, enumerations, versions,
# times), never a customer's text: left as they are.
STRUCTURAL_KEYS = frozenset(
    {
        "format",
        "name",
        "vm",
        "vms",
        "fault",
        "type",
        "version",
        "agent",
        "guest",
        "size",
        "handler_state",
        "where",
        "direction",
        "access",
        "protocol",
        "priority",
        "ports",
        "error_code",
        "sub_task",
        "status",
        "started",
        "imported_at",
        "time",
        "file",
        "line",
        "agent_service",
        "power",
        "redacted",
        "incarnation",
    }
)


def redact_value(value: Any, redactor: Redactor, key: str = "") -> Any:
    """A JSON-like value with every string redacted; a secret-named key's value whole;
    the case's structural fields (:data:`STRUCTURAL_KEYS`) kept."""
    if isinstance(value, dict):
        return {k: redact_value(v, redactor, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(item, redactor, key) for item in value]
    if isinstance(value, str) and key in STRUCTURAL_KEYS:
        return value
    if isinstance(value, str):
        if key and re.fullmatch(_SECRET_KEY, key) and value:
            return redactor._secret(value)
        return redactor.text(value)
    return value


def redact_case(case: Case, hosts: Iterable[str] = ()) -> tuple[Case, RedactionReport]:
    """The case with a customer's identifiers and secrets replaced (see the module's
    docstring); ``hosts``: host names known to be the customer's (e.g. the bundle's
    ``etc/hostname``). The bundle's file name, which people often make of the customer's
    name, becomes ``bundle-1.zip``; the case's own structure (its name, VM names, fault
    ids, versions, enumerations) is kept."""
    redactor = Redactor(hosts)
    data = case.model_dump(mode="json")
    for text in _strings(data):
        redactor.learn_hosts(text)
    source = data.get("source")
    clean = redact_value(data, redactor)
    if source is not None:
        bundle = source["bundle"]
        if not re.fullmatch(r"bundle-\d+\.zip", bundle):
            clean["source"]["bundle"] = redactor.placeholder(
                "bundle", bundle, lambda n: f"bundle-{n}.zip"
            )
        clean["source"]["redacted"] = True
    return Case.model_validate(clean), redactor.report


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value
