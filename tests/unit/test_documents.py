"""The fabric's XML/JSON documents, read back the way the real agent reads them:
``xml.dom.minidom`` + ``getElementsByTagName`` + first TEXT node only."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.dom import minidom

import pytest

from lab.platform import documents
from lab.platform.documents import GoalStateMetadata, GoalStateUrls, HandlerSpec
from tests.unit.fabric_samples import (
    agent_find,
    agent_findall,
    agent_getattr,
    agent_text,
    make_roster,
)

META = GoalStateMetadata(
    in_svd_seq_no="3",
    created_on=datetime(2026, 11, 27, 21, 56, 23, 123456, tzinfo=UTC),
    activity_id="555e551c-600e-4fb4-90ba-8ab8ec28eccc",
    correlation_id="400de90b-522e-491f-9d89-ec944661f531",
)
STATUS_URL = "http://10.199.0.2/machine/statusblob/vm1?sr=b&sp=rw&se=9999-01-01&sig=a+b/c="
HELLO = HandlerSpec(
    name="Lab.Test.HelloExt",
    version="1.0.0",
    manifest_url="http://10.199.0.2/artifacts/extensions/Lab.Test.HelloExt/manifest.xml",
    seq_no=4,
    public_settings={"taskId": "t-1", "note": 'a & b < c > d "q"', "nested": {"n": [1, 2]}},
)


def parse(body: bytes) -> minidom.Document:
    return minidom.parseString(body)


def test_versions_offers_2012_11_30_as_preferred() -> None:
    doc = parse(documents.versions_xml())
    preferred = agent_find(doc, "Preferred")
    assert agent_text(agent_find(preferred, "Version")) == "2012-11-30"


def test_goal_state_has_what_the_agent_reads() -> None:
    urls = GoalStateUrls(
        hosting_environment="http://f/machine/c/i?comp=config&type=hostingEnvironmentConfig&incarnation=7",
        shared_config="http://f/machine/c/i?comp=config&type=sharedConfig&incarnation=7",
        extensions_config="http://f/machine/c/i?comp=config&type=extensionsConfig&incarnation=7",
        full_config="http://f/machine/c/i?comp=config&type=fullConfig&incarnation=7",
    )
    body = documents.goal_state_xml(
        incarnation="7",
        container_id="c6d5526c-5ac2-4200-b6e2-56f2b70c5ab2",
        instance_id="dep._vm1",
        config_name="dep.0.dep.0._vm1.1.xml",
        urls=urls,
    )
    assert b"&amp;type=" in body  # escaped on the wire
    doc = parse(body)
    assert agent_text(agent_find(doc, "Incarnation")) == "7"
    container = agent_find(doc, "Container")
    assert (
        agent_text(agent_find(container, "ContainerId")) == "c6d5526c-5ac2-4200-b6e2-56f2b70c5ab2"
    )
    role = agent_find(doc, "RoleInstance")
    assert agent_text(agent_find(role, "InstanceId")) == "dep._vm1"
    config = agent_find(role, "Configuration")
    assert agent_text(agent_find(config, "ConfigName")) == "dep.0.dep.0._vm1.1.xml"
    assert agent_text(agent_find(doc, "HostingEnvironmentConfig")) == urls.hosting_environment
    assert agent_text(agent_find(doc, "SharedConfig")) == urls.shared_config
    assert agent_text(agent_find(doc, "ExtensionsConfig")) == urls.extensions_config
    assert agent_findall(doc, "Certificates") == []


def test_hosting_environment_names_the_vm() -> None:
    doc = parse(
        documents.hosting_environment_xml(
            incarnation="2", deployment_id="abc", role_name="_vm1", service="lab"
        )
    )
    assert agent_getattr(agent_find(doc, "Incarnation"), "instance") == "_vm1"
    assert agent_getattr(agent_find(doc, "Role"), "name") == "_vm1"
    assert agent_getattr(agent_find(doc, "Deployment"), "name") == "abc"


def test_shared_config_is_well_formed() -> None:
    doc = parse(
        documents.shared_config_xml(
            incarnation="2", deployment_id="abc", role_name="_vm1", service="lab", ip="10.0.0.4"
        )
    )
    assert agent_getattr(agent_find(doc, "Instance"), "address") == "10.0.0.4"


def test_extensions_config_without_handlers() -> None:
    doc = parse(
        documents.extensions_config_xml(
            incarnation="1", handlers=[], status_upload_blob=STATUS_URL, metadata=META
        )
    )
    assert agent_findall(agent_find(doc, "Plugins"), "Plugin") == []
    assert agent_findall(agent_find(doc, "PluginSettings"), "Plugin") == []
    blob = agent_find(doc, "StatusUploadBlob")
    assert agent_text(blob) == STATUS_URL
    assert agent_getattr(blob, "statusBlobType") == "BlockBlob"


def test_extensions_config_with_handler_matches_versions_and_carries_text_json() -> None:
    body = documents.extensions_config_xml(
        incarnation="5",
        handlers=[HELLO],
        status_upload_blob=STATUS_URL,
        metadata=META,
        ga_family_manifests={"Prod": "http://10.199.0.2/artifacts/ga/Prod_manifest.xml"},
    )
    assert b"CDATA" not in body
    doc = parse(body)
    plugin = agent_find(agent_find(doc, "Plugins"), "Plugin")
    assert agent_getattr(plugin, "name") == "Lab.Test.HelloExt"
    assert agent_getattr(plugin, "state") == "enabled"
    assert agent_getattr(plugin, "location") == HELLO.manifest_url
    settings_plugin = agent_find(agent_find(doc, "PluginSettings"), "Plugin")
    assert agent_getattr(settings_plugin, "version") == agent_getattr(plugin, "version") == "1.0.0"
    runtime = agent_findall(settings_plugin, "RuntimeSettings")
    assert len(runtime) == 1
    assert agent_getattr(runtime[0], "seqNo") == "4"
    settings = json.loads(agent_text(runtime[0]) or "")
    handler_settings = settings["runtimeSettings"][0]["handlerSettings"]
    assert handler_settings["publicSettings"] == dict(HELLO.public_settings)
    assert "protectedSettings" not in handler_settings
    family = agent_find(doc, "GAFamily")
    assert agent_text(agent_find(family, "Name")) == "Prod"


def test_in_vm_metadata_ticks_are_valid_dotnet_ticks() -> None:
    doc = parse(
        documents.extensions_config_xml(
            incarnation="3", handlers=[HELLO], status_upload_blob=STATUS_URL, metadata=META
        )
    )
    meta = agent_find(doc, "InVMGoalStateMetaData")
    ticks = agent_getattr(meta, "createdOnTicks")
    assert ticks is not None and ticks.isdigit()
    # The agent's own conversion: datetime.min + ticks / 10**7 seconds.
    as_datetime = datetime.min + timedelta(seconds=float(ticks) / 10**7)
    assert abs(as_datetime - META.created_on.replace(tzinfo=None)) < timedelta(milliseconds=1)
    assert agent_getattr(meta, "inSvdSeqNo") == "3"
    assert agent_getattr(meta, "activityId") == META.activity_id


def test_dotnet_ticks_known_value() -> None:
    # 0001-01-01 + 1 day = 864e9 ticks; the Unix epoch is 621355968000000000 ticks.
    assert documents.dotnet_ticks(datetime(1970, 1, 1, tzinfo=UTC)) == 621355968000000000
    with pytest.raises(ValueError):
        documents.dotnet_ticks(datetime(2020, 1, 1))


class FakeEncryptor:
    """Stands in for the tenant certificate; records what it was asked to encrypt."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def encrypt_settings(self, settings: Mapping[str, Any]) -> tuple[str, str]:
        self.calls.append(dict(settings))
        return "MIIBcipher==", "ABCDEF0123456789ABCDEF0123456789ABCDEF01"


PROTECTED = HandlerSpec(
    name="X.Y",
    version="1.0",
    manifest_url="http://f/m.xml",
    public_settings={"taskId": "t"},
    protected_settings={"statusBlobUri": "http://s/b?sig=a&sp=rw", "objectStr": "W10="},
)


def test_protected_settings_are_encrypted_with_the_tenant_certificate() -> None:
    encryptor = FakeEncryptor()
    settings = json.loads(PROTECTED.runtime_settings_json(encryptor))
    # Exactly wireserver.md §4.2: one runtimeSettings entry with one handlerSettings.
    assert set(settings) == {"runtimeSettings"} and len(settings["runtimeSettings"]) == 1
    assert set(settings["runtimeSettings"][0]) == {"handlerSettings"}
    handler_settings = settings["runtimeSettings"][0]["handlerSettings"]
    assert handler_settings == {
        "publicSettings": {"taskId": "t"},
        "protectedSettings": "MIIBcipher==",
        "protectedSettingsCertThumbprint": "ABCDEF0123456789ABCDEF0123456789ABCDEF01",
    }
    assert encryptor.calls == [{"statusBlobUri": "http://s/b?sig=a&sp=rw", "objectStr": "W10="}]


def test_protected_settings_need_a_certificate() -> None:
    with pytest.raises(ValueError, match="protected settings"):
        PROTECTED.runtime_settings_json()
    with pytest.raises(ValueError, match="protected settings"):
        documents.extensions_config_xml(
            incarnation="1", handlers=[PROTECTED], status_upload_blob=STATUS_URL, metadata=META
        )


def test_extensions_config_carries_the_encrypted_settings() -> None:
    encryptor = FakeEncryptor()
    body = documents.extensions_config_xml(
        incarnation="2",
        handlers=[HELLO, PROTECTED],
        status_upload_blob=STATUS_URL,
        metadata=META,
        encryptor=encryptor,
    )
    runtimes = agent_findall(agent_find(parse(body), "PluginSettings"), "RuntimeSettings")
    by_handler = [json.loads(agent_text(r) or "")["runtimeSettings"][0] for r in runtimes]
    assert "protectedSettings" not in by_handler[0]["handlerSettings"]
    assert by_handler[1]["handlerSettings"]["protectedSettings"] == "MIIBcipher=="
    assert len(encryptor.calls) == 1  # only the handler that has protected settings


def test_handler_spec_keeps_its_own_copy_of_settings() -> None:
    public: dict[str, Any] = {"n": [1]}
    protected: dict[str, Any] = {"secret": "a"}
    spec = HandlerSpec(
        name="A.B",
        version="1",
        manifest_url="u",
        public_settings=public,
        protected_settings=protected,
    )
    public["n"].append(2)
    protected["secret"] = "changed"
    assert spec.public_settings == {"n": [1]}
    assert spec.protected_settings == {"secret": "a"}
    with pytest.raises(ValueError, match="JSON"):
        HandlerSpec(name="A", version="1", manifest_url="u", protected_settings={"x": object()})
    with pytest.raises(ValueError, match="JSON"):
        HandlerSpec(name="A", version="1", manifest_url="u", public_settings={"x": {1, 2}})


def test_goal_state_points_at_certificates_when_given() -> None:
    urls = GoalStateUrls(
        hosting_environment="http://f/h",
        shared_config="http://f/s",
        extensions_config="http://f/e",
        full_config="http://f/f",
        certificates="http://f/machine/c/i?comp=certificates&incarnation=3",
    )
    body = documents.goal_state_xml(
        incarnation="3", container_id="c", instance_id="i", config_name="n", urls=urls
    )
    config = agent_find(agent_find(parse(body), "RoleInstance"), "Configuration")
    assert agent_text(agent_find(config, "Certificates")) == urls.certificates


def test_certificates_document_shape() -> None:
    doc = parse(documents.certificates_xml(incarnation="5", data="MIIB\nAAAA"))
    root = doc.documentElement
    assert root is not None and root.tagName == "CertificateFile"
    assert agent_text(agent_find(doc, "Incarnation")) == "5"
    assert agent_text(agent_find(doc, "Format")) == "Pkcs7BlobWithPfxContents"
    assert agent_text(agent_find(doc, "Data")) == "MIIB\nAAAA"


def test_handler_spec_validation() -> None:
    with pytest.raises(ValueError):
        HandlerSpec(name="A", version="1", manifest_url="u", state="running")
    with pytest.raises(ValueError):
        documents.extensions_config_xml(
            incarnation="1",
            handlers=[HELLO, HELLO],
            status_upload_blob=STATUS_URL,
            metadata=META,
        )


def test_manifest_lists_versions_and_uris() -> None:
    doc = parse(
        documents.plugin_version_manifest_xml(
            [("1.0.0", ["http://f/a__1.0.0.zip"]), ("1.0.1", ["http://f/a__1.0.1.zip"])]
        )
    )
    plugins = agent_findall(agent_find(doc, "Plugins"), "Plugin")
    assert [agent_text(agent_find(p, "Version")) for p in plugins] == ["1.0.0", "1.0.1"]
    assert agent_text(agent_find(plugins[1], "Uri")) == "http://f/a__1.0.1.zip"


def test_imds_instance_has_fields_the_agent_validates() -> None:
    roster = make_roster()
    guest = roster.guests[0]
    doc = documents.imds_instance(roster, guest, "vm-id")
    interface = doc["network"]["interface"][0]
    assert interface["macAddress"] == "02420AC7000B"
    assert interface["ipv4"]["ipAddress"][0]["privateIpAddress"] == guest.ip
    assert interface["ipv4"]["subnet"][0] == {"address": "10.199.0.0", "prefix": "24"}
    compute = doc["compute"]
    assert compute["name"] == "vm1"
    assert compute["vmId"] == "vm-id"
    assert compute["subscriptionId"] == roster.subscription_id
    assert all(isinstance(v, str) for v in compute.values())
    # Exactly the 2018-02-01 compute keys: 2.7.3 warns about any other key.
    assert set(compute) == {
        "location", "name", "offer", "osType", "placementGroupId", "platformFaultDomain",
        "platformUpdateDomain", "publisher", "resourceGroupName", "sku", "subscriptionId",
        "tags", "version", "vmId", "vmScaleSetName", "vmSize", "zone",
    }  # fmt: skip
    assert documents.guest_os_release("2.12.0.2") == "13"
    assert documents.guest_os_release("2.7.3.0") == "12"
