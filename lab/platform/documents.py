"""The documents the emulated platform serves, built as data and serialised once.

Every XML document is built with :mod:`xml.etree.ElementTree` so escaping is never our
problem: the agent parses with ``xml.dom.minidom`` and reads only the *first text node*
of an element, so a stray CDATA section or an unescaped ``&`` in a SAS URL silently
turns a setting into ``None`` inside the guest (and DEB 2.7.3 on Python 3.11 crashes in
its own error path). Building trees instead of templates makes that class of bug
impossible. The shapes follow what the agent reads (see ``shared/domain/wireserver.md``
§3-§4); elements the agent ignores are kept only where they make the document look like
Azure's to a person reading ``/var/lib/waagent``.

This module is pure: no clocks, no state, no I/O. Callers pass in everything,
including the :class:`SettingsEncryptor` that turns protected settings into ciphertext.
"""

from __future__ import annotations

import ipaddress
import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from lab.platform.arm.compute_sizes import vm_size_for
from lab.platform.roster import GuestEntry, Roster

# The WireServer protocol version every agent since 2012 asks for (W1 must offer it).
WIRE_PROTOCOL_VERSION = "2012-11-30"
# HostGAPlugin API version the agent looks for in GET /versions.
HOSTPLUGIN_API_VERSION = "2015-09-01"

HANDLER_STATES = ("enabled", "disabled", "uninstall")

_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
_TICKS_PER_SECOND = 10_000_000


class SettingsEncryptor(Protocol):
    """Encrypts protected settings to a VM's tenant certificate, as CRP does
    (:class:`lab.platform.certificates.TenantCertificate` is the real one)."""

    def encrypt_settings(self, settings: Mapping[str, Any]) -> tuple[str, str]:
        """Return (base64 PKCS#7 ciphertext, SHA-1 thumbprint of the certificate)."""
        ...


def _json_copy(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A private JSON-shaped copy: rejects what JSON cannot carry now, when the caller
    builds the spec, rather than when the agent fetches the goal state; and a caller
    that later mutates its dict cannot change a published goal state."""
    try:
        copied = json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from exc
    assert isinstance(copied, dict)
    return copied


@dataclass(frozen=True)
class HandlerSpec:
    """One extension handler as the platform wants it on a VM.

    ``seq_no`` is what makes the agent re-run ``enable`` with new settings after an
    incarnation bump; ``version`` must match between ``Plugins`` and ``PluginSettings``
    or the agent rejects the handler ("PluginSettings Version Mismatch").

    ``protected_settings`` is plain data, as a CRP client hands it over; it is
    encrypted to the VM's tenant certificate only when ExtensionsConfig is rendered,
    so the spec never holds ciphertext tied to one certificate.
    """

    name: str
    version: str
    manifest_url: str
    state: str = "enabled"
    seq_no: int = 0
    public_settings: Mapping[str, Any] = field(default_factory=dict)
    protected_settings: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.state not in HANDLER_STATES:
            raise ValueError(f"handler state must be one of {HANDLER_STATES}, got {self.state!r}")
        if self.seq_no < 0:
            raise ValueError(f"seq_no must be >= 0, got {self.seq_no}")
        object.__setattr__(
            self, "public_settings", _json_copy(self.public_settings, "public_settings")
        )
        if self.protected_settings is not None:
            object.__setattr__(
                self,
                "protected_settings",
                _json_copy(self.protected_settings, "protected_settings"),
            )

    def runtime_settings_json(self, encryptor: SettingsEncryptor | None = None) -> str:
        """The JSON text CRP puts in ``RuntimeSettings`` (one handlerSettings entry).

        Protected settings are encrypted with ``encryptor`` (the VM's tenant
        certificate); a spec with protected settings cannot be rendered without one.
        """
        handler_settings: dict[str, Any] = {"publicSettings": dict(self.public_settings)}
        if self.protected_settings is not None:
            if encryptor is None:
                raise ValueError(
                    f"handler {self.name} has protected settings but no certificate to "
                    "encrypt them to"
                )
            ciphertext, thumbprint = encryptor.encrypt_settings(self.protected_settings)
            handler_settings["protectedSettings"] = ciphertext
            handler_settings["protectedSettingsCertThumbprint"] = thumbprint
        return json.dumps({"runtimeSettings": [{"handlerSettings": handler_settings}]})


@dataclass(frozen=True)
class GoalStateUrls:
    """Where the goal state sends the agent for each sub-document (absolute URLs)."""

    hosting_environment: str
    shared_config: str
    extensions_config: str
    full_config: str
    certificates: str | None = None


@dataclass(frozen=True)
class GoalStateMetadata:
    """Identity of one extensions goal state, as CRP stamps it (``InVMGoalStateMetaData``)."""

    in_svd_seq_no: str
    created_on: datetime
    activity_id: str
    correlation_id: str


def dotnet_ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01 UTC), the unit of ``createdOnTicks``.

    Integer arithmetic on purpose: a float would lose the last digits of an 18-digit
    tick count and the agent compares these values across documents.
    """
    if moment.tzinfo is None:
        raise ValueError("dotnet_ticks needs an aware datetime")
    delta = moment.astimezone(UTC) - _DOTNET_EPOCH
    return (delta.days * 86_400 + delta.seconds) * _TICKS_PER_SECOND + delta.microseconds * 10


def to_bytes(root: ET.Element) -> bytes:
    """Serialise with an XML declaration, UTF-8, no pretty-printing.

    No indentation: whitespace text nodes before a leaf's text would be harmless, but
    the agent reads only the first text node, so we keep leaves single-node by design.
    """
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


# --------------------------------------------------------------------------- W1


def versions_xml() -> bytes:
    """W1 ``GET /?comp=versions``: the agent aborts detection unless 2012-11-30 is here."""
    root = ET.Element("Versions")
    preferred = _sub(root, "Preferred")
    _sub(preferred, "Version", WIRE_PROTOCOL_VERSION)
    supported = _sub(root, "Supported")
    for version in (WIRE_PROTOCOL_VERSION, "2010-12-15"):
        _sub(supported, "Version", version)
    return to_bytes(root)


# --------------------------------------------------------------------------- W2


def goal_state_xml(
    *,
    incarnation: str,
    container_id: str,
    instance_id: str,
    config_name: str,
    urls: GoalStateUrls,
) -> bytes:
    """W2 ``GET /machine/?comp=goalstate``.

    The agent looks every element up by name anywhere in the tree; ``RoleInstance``
    must exist (else it retries) and HostingEnvironmentConfig/SharedConfig URLs are
    mandatory in 2.7.3. ``Certificates`` is there when ``urls.certificates`` is (on Azure,
    always): the agent then fetches the tenant certificate with every new goal state,
    and one that fails to decrypt breaks the whole fetch in 2.7.3.
    """
    root = ET.Element("GoalState")
    _sub(root, "Version", "2015-04-05")
    _sub(root, "Incarnation", incarnation)
    machine = _sub(root, "Machine")
    _sub(machine, "ExpectedState", "Started")
    _sub(machine, "StopRolesDeadlineHint", "300000")
    probes = _sub(machine, "LBProbePorts")
    _sub(probes, "Port", "16001")
    _sub(machine, "ExpectHealthReport", "FALSE")
    container = _sub(root, "Container")
    _sub(container, "ContainerId", container_id)
    instances = _sub(container, "RoleInstanceList")
    instance = _sub(instances, "RoleInstance")
    _sub(instance, "InstanceId", instance_id)
    _sub(instance, "State", "Started")
    configuration = _sub(instance, "Configuration")
    _sub(configuration, "HostingEnvironmentConfig", urls.hosting_environment)
    _sub(configuration, "SharedConfig", urls.shared_config)
    _sub(configuration, "ExtensionsConfig", urls.extensions_config)
    _sub(configuration, "FullConfig", urls.full_config)
    if urls.certificates is not None:
        _sub(configuration, "Certificates", urls.certificates)
    _sub(configuration, "ConfigName", config_name)
    return to_bytes(root)


# --------------------------------------------------------------------------- W3 / W4


def _deployment(parent: ET.Element, deployment_id: str, service: str) -> None:
    deployment = _sub(
        parent, "Deployment", name=deployment_id, guid=f"{{{deployment_id}}}", incarnation="0"
    )
    _sub(deployment, "Service", name=service, guid="{00000000-0000-0000-0000-000000000000}")
    _sub(deployment, "ServiceInstance", name=f"{deployment_id}.0", guid=f"{{{deployment_id}}}")


def hosting_environment_xml(
    *, incarnation: str, deployment_id: str, role_name: str, service: str
) -> bytes:
    """W3: the agent reads only ``Incarnation@instance`` (VM name), ``Role@name`` and
    ``Deployment@name``, for telemetry; the rest mirrors Azure's layout for humans."""
    root = ET.Element(
        "HostingEnvironmentConfig", version="1.0.0.0", goalStateIncarnation=incarnation
    )
    _deployment(root, deployment_id, service)
    _sub(root, "Incarnation", number=incarnation, instance=role_name, guid=f"{{{deployment_id}}}")
    _sub(
        root,
        "Role",
        guid=f"{{{deployment_id}}}",
        name=role_name,
        hostingEnvironmentVersion="1",
        software="",
        softwareType="ApplicationPackage",
        entryPoint="",
        parameters="",
        settleTimeSeconds="10",
    )
    settings = _sub(root, "HostingEnvironmentSettings", name="full", runtime="snaplab")
    _sub(settings, "CAS", mode="full")
    _sub(settings, "PrivilegeLevel", mode="max")
    return to_bytes(root)


def shared_config_xml(
    *, incarnation: str, deployment_id: str, role_name: str, service: str, ip: str
) -> bytes:
    """W4: stored as ``SharedConfig.xml`` and only parsed for RDMA; must be well-formed."""
    root = ET.Element("SharedConfig", version="1.0.0.0", goalStateIncarnation=incarnation)
    _deployment(root, deployment_id, service)
    _sub(root, "Incarnation", number=incarnation, instance=role_name, guid=f"{{{deployment_id}}}")
    _sub(root, "Role", guid=f"{{{deployment_id}}}", name=role_name, settleTimeSeconds="0")
    instances = _sub(root, "Instances")
    instance = _sub(instances, "Instance", id=role_name, address=ip)
    _sub(instance, "FaultDomains", randomId="0", updateId="0", updateCount="0")
    _sub(instance, "InputEndpoints")
    return to_bytes(root)


# --------------------------------------------------------------------------- W5


CERTIFICATES_FORMAT = "Pkcs7BlobWithPfxContents"


def certificates_xml(*, incarnation: str, data: str) -> bytes:
    """W5 ``CertificateFile``: ``data`` is the base64 (line-wrapped) CMS envelope of the
    PFX (:mod:`lab.platform.certificates` makes it). The agent reads ``Format`` and
    ``Data`` only; any format but this one and it installs no certificate."""
    root = ET.Element("CertificateFile")
    _sub(root, "Version", WIRE_PROTOCOL_VERSION)
    _sub(root, "Incarnation", incarnation)
    _sub(root, "Format", CERTIFICATES_FORMAT)
    _sub(root, "Data", data)
    return to_bytes(root)


# --------------------------------------------------------------------------- W6


def extensions_config_xml(
    *,
    incarnation: str,
    handlers: Sequence[HandlerSpec],
    status_upload_blob: str,
    metadata: GoalStateMetadata,
    ga_family_manifests: Mapping[str, str] | None = None,
    status_blob_type: str = "BlockBlob",
    encryptor: SettingsEncryptor | None = None,
) -> bytes:
    """W6 ``Extensions``: handlers, their settings, and where to upload VM status.

    ``RuntimeSettings`` carries JSON as plain (escaped) text; CDATA would be invisible to
    the agent's first-text-node reader. ``InVMGoalStateMetaData`` carries valid .NET ticks
    because an unparsable value sends DEB 2.7.3 on Python 3.11 into its broken
    exception formatter. ``ga_family_manifests`` (family name -> manifest URL) lets an
    agent that checks for updates find an empty manifest instead of nothing.
    ``encryptor`` (the VM's tenant certificate) encrypts protected settings.
    """
    if status_blob_type not in ("BlockBlob", "PageBlob"):
        raise ValueError(
            f"status blob type must be BlockBlob or PageBlob, got {status_blob_type!r}"
        )
    names = [h.name.lower() for h in handlers]
    if len(set(names)) != len(names):
        raise ValueError("handler names must be unique (case-insensitively)")

    root = ET.Element("Extensions", version="1.0.0.0", goalStateIncarnation=incarnation)
    ga_extension = _sub(root, "GuestAgentExtension")
    families = _sub(ga_extension, "GAFamilies")
    for family_name, manifest_url in (ga_family_manifests or {}).items():
        family = _sub(families, "GAFamily")
        _sub(family, "Name", family_name)
        uris = _sub(family, "Uris")
        _sub(uris, "Uri", manifest_url)

    plugins = _sub(root, "Plugins")
    for handler in handlers:
        _sub(
            plugins,
            "Plugin",
            name=handler.name,
            version=handler.version,
            location=handler.manifest_url,
            failoverlocation=handler.manifest_url,
            config="",
            state=handler.state,
            autoUpgrade="false",
            runAsStartupTask="false",
            isJson="true",
            useExactVersion="true",
        )

    plugin_settings = _sub(root, "PluginSettings")
    for handler in handlers:
        plugin = _sub(plugin_settings, "Plugin", name=handler.name, version=handler.version)
        _sub(
            plugin,
            "RuntimeSettings",
            handler.runtime_settings_json(encryptor),
            seqNo=str(handler.seq_no),
        )

    _sub(root, "StatusUploadBlob", status_upload_blob, statusBlobType=status_blob_type)
    _sub(
        root,
        "InVMGoalStateMetaData",
        inSvdSeqNo=metadata.in_svd_seq_no,
        createdOnTicks=str(dotnet_ticks(metadata.created_on)),
        activityId=metadata.activity_id,
        correlationId=metadata.correlation_id,
    )
    return to_bytes(root)


# --------------------------------------------------------------------------- manifests


def plugin_version_manifest_xml(packages: Sequence[tuple[str, Sequence[str]]]) -> bytes:
    """A ``PluginVersionManifest`` listing (version, zip URLs) pairs.

    Used for extension manifests and, with an empty list, for GA-family manifests: an
    agent that looks for a newer agent then finds none and carries on.
    """
    root = ET.Element("PluginVersionManifest")
    plugins = _sub(root, "Plugins")
    for version, uris in packages:
        plugin = _sub(plugins, "Plugin")
        _sub(plugin, "Version", version)
        uri_list = _sub(plugin, "Uris")
        for uri in uris:
            _sub(uri_list, "Uri", uri)
    _sub(root, "InternalPlugins")
    return to_bytes(root)


# --------------------------------------------------------------------------- errors


def error_xml(code: str, message: str) -> bytes:
    """An Azure-storage-style ``<Error>`` body; what a client sees when we refuse."""
    root = ET.Element("Error")
    _sub(root, "Code", code)
    _sub(root, "Message", message)
    return to_bytes(root)


# --------------------------------------------------------------------------- IMDS

# Which Debian release carries which agent package in the lab (DESIGN.md): the trixie
# agent needs a trixie guest, the others run on bookworm.
_DEBIAN_RELEASE_BY_AGENT_PREFIX = (("2.12.", "13"),)
_DEFAULT_DEBIAN_RELEASE = "12"


def guest_os_release(agent_version: str) -> str:
    """The Debian major release a guest with this agent version runs."""
    for prefix, release in _DEBIAN_RELEASE_BY_AGENT_PREFIX:
        if agent_version.startswith(prefix):
            return release
    return _DEFAULT_DEBIAN_RELEASE


def imds_instance(roster: Roster, guest: GuestEntry, vm_id: str) -> dict[str, Any]:
    """The IMDS ``/metadata/instance`` body for one guest.

    The agent uses ``compute`` for telemetry (image origin, location, VM size) and
    validates that ``network.interface[0]`` has ``macAddress`` and an
    ``ipv4.ipAddress[0].privateIpAddress``; everything is strings, as on Azure. The
    compute keys are exactly those of api-version 2018-02-01, the version the agent
    asks for: 2.7.3 logs a warning for every key it does not know.
    """
    network = ipaddress.ip_network(roster.subnet, strict=False)
    release = guest_os_release(guest.agent_version)
    compute = {
        "location": roster.location,
        "name": guest.name,
        "offer": f"debian-{release}",
        "osType": "Linux",
        "placementGroupId": "",
        "platformFaultDomain": "0",
        "platformUpdateDomain": "0",
        "publisher": "Debian",
        "resourceGroupName": roster.resource_group,
        "sku": release,
        "subscriptionId": roster.subscription_id,
        "tags": f"snaplab:{roster.lab}",
        "version": "latest",
        "vmId": vm_id,
        "vmScaleSetName": "",
        "vmSize": vm_size_for(guest).name,
        "zone": "",
    }
    interface = {
        "ipv4": {
            "ipAddress": [{"privateIpAddress": guest.ip, "publicIpAddress": ""}],
            "subnet": [{"address": str(network.network_address), "prefix": str(network.prefixlen)}],
        },
        "ipv6": {"ipAddress": []},
        "macAddress": guest.mac.replace(":", "").replace("-", "").upper(),
    }
    return {"compute": compute, "network": {"interface": [interface]}}
