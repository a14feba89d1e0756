"""Security rules as Microsoft.Network takes, refuses and shows them.

A rule arrives as ARM's JSON (``{"properties": {"priority", "direction", "access",
"protocol", "sourceAddressPrefix(es)", "destinationAddressPrefix(es)",
"sourcePortRange(s)", "destinationPortRange(s)", "description"}}``) from
``azure-mgmt-network`` or ``az network nsg rule create``; :func:`parse_rule` turns it into
a :class:`SecurityRule` or refuses it with the code Azure gives for the same mistake:

=============================================== ======================================
``SecurityRuleInvalidPriority``                 priority outside 100-4096
``SecurityRuleInvalidPortRange``                a port that is not ``*``, ``N`` or ``N-M``
                                                within 0-65535
``SecurityRuleInvalidAddressPrefix``            an address prefix that is neither ``*``,
                                                an IP address or CIDR, nor a service tag
``SecurityRuleParameterContainsUnsupportedValue`` a protocol, access or direction Azure
                                                does not know, or ``*``/a service tag in
                                                a list of prefixes (lists take addresses)
``SecurityRuleConflict``                        another rule of the NSG has the same
                                                priority and direction
``InvalidResourceName``                         a rule name Azure would not take
``InvalidRequestFormat``                        a required property is missing, or both
                                                the single and the list form are given
=============================================== ======================================

Names and enum values compare without regard to case, as ARM's do; values are shown in
Azure's spelling (``Tcp``, ``Outbound``). The NSG's default rules (Azure's six, 65000,
65001 and 65500 in each direction) are :data:`DEFAULT_RULES`.

Runs inside the twin's container on Debian's Python: stdlib only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lab.platform.arm.conventions import ArmError, JsonObject

PROTOCOLS = ("Tcp", "Udp", "Icmp", "Esp", "Ah", "*")
ACCESSES = ("Allow", "Deny")
DIRECTIONS = ("Inbound", "Outbound")
PRIORITY_RANGE = (100, 4096)
ANY = "*"

# Service tags a single address prefix may name. Those in REGIONAL_TAGS also come
# qualified by a region ("Storage.WestEurope"). Tags compare without regard to case.
SERVICE_TAGS = (
    "VirtualNetwork",
    "Internet",
    "AzureLoadBalancer",
    "AzureCloud",
    "Storage",
    "Sql",
    "AzureMonitor",
    "AzureActiveDirectory",
    "AzureKeyVault",
    "AzureBackup",
    "AzureResourceManager",
    "AzureTrafficManager",
    "AzureContainerRegistry",
    "EventHub",
    "ServiceBus",
    "GuestAndHybridManagement",
)
REGIONAL_TAGS = frozenset(
    t.lower()
    for t in (
        "AzureCloud",
        "Storage",
        "Sql",
        "AzureMonitor",
        "AzureKeyVault",
        "AzureBackup",
        "AzureContainerRegistry",
        "EventHub",
        "ServiceBus",
    )
)
_TAGS = {t.lower(): t for t in SERVICE_TAGS}

# Azure: up to 80 characters; starts with a letter, digit or '_'; ends with one of those
# or '_'; in between letters, digits, '_', '.', '-'.
_NAME = re.compile(r"^\w(?:[\w.-]{0,78}\w)?$", re.ASCII)
_REGION = re.compile(r"^[A-Za-z0-9-]{1,40}$")  # Azure's region names; the lab's "snaplab-local"
_PORT = re.compile(r"^(\d{1,5})(?:-(\d{1,5}))?$")


@dataclass(frozen=True)
class SecurityRule:
    """One security rule, in the form it was given: the single (``*Prefix``,
    ``*PortRange``) or the list form (``*Prefixes``, ``*PortRanges``) of each field."""

    name: str
    priority: int
    direction: str
    access: str
    protocol: str
    source_address_prefix: str = ""
    source_address_prefixes: tuple[str, ...] = ()
    destination_address_prefix: str = ""
    destination_address_prefixes: tuple[str, ...] = ()
    source_port_range: str = ""
    source_port_ranges: tuple[str, ...] = ()
    destination_port_range: str = ""
    destination_port_ranges: tuple[str, ...] = ()
    description: str = ""

    @property
    def sources(self) -> tuple[str, ...]:
        return self.source_address_prefixes or (self.source_address_prefix,)

    @property
    def destinations(self) -> tuple[str, ...]:
        return self.destination_address_prefixes or (self.destination_address_prefix,)

    @property
    def source_ports(self) -> tuple[str, ...]:
        return self.source_port_ranges or (self.source_port_range,)

    @property
    def destination_ports(self) -> tuple[str, ...]:
        return self.destination_port_ranges or (self.destination_port_range,)

    def properties(self) -> JsonObject:
        """The rule's ARM ``properties`` (without ``provisioningState``)."""
        props: JsonObject = {}
        if self.description:
            props["description"] = self.description
        props.update(
            {
                "protocol": self.protocol,
                "sourcePortRange": self.source_port_range or None,
                "destinationPortRange": self.destination_port_range or None,
                "sourceAddressPrefix": self.source_address_prefix or None,
                "destinationAddressPrefix": self.destination_address_prefix or None,
                "access": self.access,
                "priority": self.priority,
                "direction": self.direction,
                "sourcePortRanges": list(self.source_port_ranges),
                "destinationPortRanges": list(self.destination_port_ranges),
                "sourceAddressPrefixes": list(self.source_address_prefixes),
                "destinationAddressPrefixes": list(self.destination_address_prefixes),
            }
        )
        return {k: v for k, v in props.items() if v is not None}

    def to_json(self) -> JsonObject:
        """The rule as the twin's store keeps it: name plus its ARM properties."""
        return {"name": self.name, "properties": self.properties()}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> SecurityRule:
        """A stored rule (already valid once); raises ValueError on a wrong shape."""
        name = raw.get("name")
        props = raw.get("properties")
        if not isinstance(name, str) or not isinstance(props, dict):
            raise ValueError("a stored security rule needs a name and properties")
        try:
            return parse_rule(name, {"properties": props}, name)
        except ArmError as exc:
            raise ValueError(f"stored security rule {name!r}: {exc.message}") from exc

    def describe(self) -> str:
        """One line, as a person reads a rule in the portal's list."""
        ports = ",".join(self.destination_ports)
        port = "" if ports == ANY else f" port {ports}"
        return (
            f"{self.name} (priority {self.priority}, {self.direction} {self.access} "
            f"{self.protocol} from {','.join(self.sources)} to "
            f"{','.join(self.destinations)}{port})"
        )


def _default(
    name: str, priority: int, direction: str, access: str, source: str, dest: str, text: str
) -> SecurityRule:
    return SecurityRule(
        name=name,
        priority=priority,
        direction=direction,
        access=access,
        protocol=ANY,
        source_address_prefix=source,
        destination_address_prefix=dest,
        source_port_range=ANY,
        destination_port_range=ANY,
        description=text,
    )


# Azure's default rules of every NSG (lowest precedence; they cannot be removed).
DEFAULT_RULES = (
    _default(
        "AllowVnetInBound",
        65000,
        "Inbound",
        "Allow",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow inbound traffic from all VMs in VNET",
    ),
    _default(
        "AllowAzureLoadBalancerInBound",
        65001,
        "Inbound",
        "Allow",
        "AzureLoadBalancer",
        ANY,
        "Allow inbound traffic from azure load balancer",
    ),
    _default("DenyAllInBound", 65500, "Inbound", "Deny", ANY, ANY, "Deny all inbound traffic"),
    _default(
        "AllowVnetOutBound",
        65000,
        "Outbound",
        "Allow",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow outbound traffic from all VMs to all VMs in VNET",
    ),
    _default(
        "AllowInternetOutBound",
        65001,
        "Outbound",
        "Allow",
        ANY,
        "Internet",
        "Allow outbound traffic from all VMs to Internet",
    ),
    _default("DenyAllOutBound", 65500, "Outbound", "Deny", ANY, ANY, "Deny all outbound traffic"),
)


def check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 80 characters long. "
            "It must begin with a word character, and it must end with a word character "
            "or with '_'. The name may contain word characters or '.', '-', '_'.",
        )


def parse_rule(name: str, body: Mapping[str, object], rule_id: str) -> SecurityRule:
    """The rule ``body`` describes, or ARM's 400 naming what Azure would refuse."""
    check_name(name)
    props = body.get("properties")
    if not isinstance(props, dict):
        raise _missing(rule_id, "properties")
    description = props.get("description")
    priority = _priority(props.get("priority"), rule_id)
    direction = _enum(props, "direction", DIRECTIONS, rule_id)
    access = _enum(props, "access", ACCESSES, rule_id)
    protocol = _enum(props, "protocol", PROTOCOLS, rule_id)
    source, sources = _prefixes(props, "source", rule_id)
    destination, destinations = _prefixes(props, "destination", rule_id)
    source_port, source_ports = _ports(props, "source", rule_id)
    destination_port, destination_ports = _ports(props, "destination", rule_id)
    return SecurityRule(
        name=name,
        priority=priority,
        direction=direction,
        access=access,
        protocol=protocol,
        source_address_prefix=source,
        source_address_prefixes=sources,
        destination_address_prefix=destination,
        destination_address_prefixes=destinations,
        source_port_range=source_port,
        source_port_ranges=source_ports,
        destination_port_range=destination_port,
        destination_port_ranges=destination_ports,
        description=description if isinstance(description, str) else "",
    )


def check_conflicts(rule: SecurityRule, others: Iterable[SecurityRule]) -> None:
    """Azure's ``SecurityRuleConflict``: priorities are unique per direction."""
    for other in others:
        if other.name.lower() == rule.name.lower():
            continue
        if other.priority == rule.priority and other.direction == rule.direction:
            raise ArmError(
                400,
                "SecurityRuleConflict",
                f"Security rule {other.name} conflicts with rule {rule.name}. Rules cannot "
                "have the same Priority and Direction. To learn more, see aka.ms/nsgrules.",
            )


def check_rule_set(rules: Sequence[SecurityRule]) -> None:
    """A whole NSG's rules (an NSG PUT): unique names, no priority conflicts."""
    seen: dict[str, SecurityRule] = {}
    for rule in rules:
        if rule.name.lower() in seen:
            raise ArmError(
                400,
                "InvalidRequestFormat",
                f"The request names security rule {rule.name} more than once.",
            )
        check_conflicts(rule, seen.values())
        seen[rule.name.lower()] = rule


def service_tag(prefix: str) -> str | None:
    """The canonical tag a prefix names (``Storage``, ``Storage.WestEurope``), or None
    when it is not a service tag."""
    base, dot, region = prefix.partition(".")
    tag = _TAGS.get(base.lower())
    if tag is None or (dot and (base.lower() not in REGIONAL_TAGS or not _REGION.match(region))):
        return None
    return f"{tag}.{region}" if dot else tag


def ip_network(prefix: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network an address or CIDR prefix names, or None when it names none."""
    try:
        return ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return None


def port_range(text: str) -> tuple[int, int] | None:
    """``(low, high)`` of ``N`` or ``N-M``; None for ``*``. ValueError for anything else."""
    if text == ANY:
        return None
    match = _PORT.match(text)
    if match:
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if 0 <= low <= high <= 65535:
            return low, high
    raise ValueError(text)


# -- field parsers


def _missing(rule_id: str, prop: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRequestFormat",
        f"Cannot parse the request: security rule {rule_id} has no {prop}, which is required.",
    )


def _unsupported(rule_id: str, param: str, value: object, supported: Sequence[str]) -> ArmError:
    return ArmError(
        400,
        "SecurityRuleParameterContainsUnsupportedValue",
        f"Security rule parameter {param} for rule with Id {rule_id} has an unsupported "
        f"value: {value}. Supported values: {', '.join(supported)}.",
    )


def _priority(raw: object, rule_id: str) -> int:
    if raw is None:
        raise _missing(rule_id, "priority")
    low, high = PRIORITY_RANGE
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ArmError(
            400,
            "SecurityRuleInvalidPriority",
            f"Security rule has invalid Priority. Value provided: {raw} "
            f"Allowed range {low}-{high}.",
        )
    return raw


def _enum(props: Mapping[str, object], key: str, allowed: Sequence[str], rule_id: str) -> str:
    raw = props.get(key)
    if raw is None:
        raise _missing(rule_id, key)
    found = next((a for a in allowed if isinstance(raw, str) and a.lower() == raw.lower()), None)
    if found is None:
        raise _unsupported(rule_id, key[0].upper() + key[1:], raw, allowed)
    return found


def _single_or_list(
    props: Mapping[str, object], single: str, plural: str, rule_id: str
) -> tuple[str, tuple[str, ...]]:
    one = props.get(single)
    many = props.get(plural) or []
    if one is not None and not isinstance(one, str):
        raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request: {single}.")
    if not isinstance(many, list) or not all(isinstance(m, str) for m in many):
        raise ArmError(400, "InvalidRequestFormat", f"Cannot parse the request: {plural}.")
    if one and many:
        raise ArmError(
            400,
            "InvalidRequestFormat",
            f"Security rule {rule_id} may give {single} or {plural}, not both.",
        )
    if not one and not many:
        raise _missing(rule_id, f"{single} or {plural}")
    return (one or "").strip(), tuple(str(m).strip() for m in many)


def _prefixes(props: Mapping[str, object], side: str, rule_id: str) -> tuple[str, tuple[str, ...]]:
    single, plural = f"{side}AddressPrefix", f"{side}AddressPrefixes"
    one, many = _single_or_list(props, single, plural, rule_id)
    if one:
        if one != ANY and service_tag(one) is None and ip_network(one) is None:
            raise _bad_prefix(rule_id, one)
        one = service_tag(one) or one
    for prefix in many:
        if prefix == ANY or service_tag(prefix) is not None:
            raise ArmError(
                400,
                "SecurityRuleParameterContainsUnsupportedValue",
                f"Security rule parameter {plural[0].upper() + plural[1:]} for rule with Id "
                f"{rule_id} cannot specify existing VIRTUALNETWORK, INTERNET, "
                f"AZURELOADBALANCER, '*' or system tags. Unsupported value used: {prefix}.",
            )
        if ip_network(prefix) is None:
            raise _bad_prefix(rule_id, prefix)
    return one, many


def _bad_prefix(rule_id: str, prefix: str) -> ArmError:
    return ArmError(
        400,
        "SecurityRuleInvalidAddressPrefix",
        f"Security rule {rule_id} has invalid Address prefix. Value provided: {prefix}",
    )


def _ports(props: Mapping[str, object], side: str, rule_id: str) -> tuple[str, tuple[str, ...]]:
    single, plural = f"{side}PortRange", f"{side}PortRanges"
    one, many = _single_or_list(props, single, plural, rule_id)
    for text in (one, *many) if one else many:
        try:
            port_range(text)
        except ValueError:
            raise ArmError(
                400,
                "SecurityRuleInvalidPortRange",
                f"Security rule has invalid Port range. Value provided: {text}. Value "
                "should be an integer OR integer range with '-' delimiter. Valid range "
                "0-65535.",
            ) from None
    return one, many
