"""Redaction (lab.cases.redact): stable placeholders, structure kept, nothing secret left."""

from __future__ import annotations

import re

from lab.cases.load import dump_case, parse_case
from lab.cases.model import Case
from lab.cases.redact import Redactor, redact_case

SIG = "sig=abcDEF%2Bxyz0123456789%3D"
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----"
SUB = "3f2b1c9e-1111-2222-3333-444455556666"
LOG = f"""INFO creating [/var/lib/waagent/published_hostname] with hostname [contoso-db01]
PUT https://contosostore.blob.core.windows.net/vhds/d.vhd?sv=2020-08-04&se=2026-12-08&sp=rw&{SIG}
"protectedSettings": "MIIBBASE64==", "protectedSettingsCertThumbprint": "ABCDEF0123"
/subscriptions/{SUB}/resourceGroups/contoso-rg/providers/Microsoft.Compute/virtualMachines/contoso-db01
{KEY}
Wire server endpoint:168.63.129.16 eth0 10.0.0.4 lab 10.213.0.11
mask 255.255.255.0 imds 169.254.169.254
WALinuxAgent-2.12.0.2 version 2.7.3.0 "version": "1.0.9225.0" VMSnapshotLinux 1.0.93.0
HttpProxy.Host=proxy.contoso.com
password=hunter2 http://proxy.contoso.com:3128 contoso-db01.internal.cloudapp.net ip 52.1.2.3
"""


def test_every_kind_is_replaced_and_the_rest_kept() -> None:
    redactor = Redactor()
    redactor.learn_hosts(LOG)
    out = redactor.text(LOG)
    for secret in (
        SIG,
        "abcDEF",
        "MIIEowIBAAKCAQEA",
        "MIIBBASE64",
        SUB,
        "contoso",
        "hunter2",
        "10.0.0.4",
        "52.1.2.3",
    ):
        assert secret not in out, secret
    for kept in (
        "168.63.129.16",
        "10.213.0.11",
        "255.255.255.0",
        "169.254.169.254",
        "WALinuxAgent-2.12.0.2",
        "2.7.3.0",
        "1.0.9225.0",
        "1.0.93.0",
        "ABCDEF0123",
        "Microsoft.Compute/virtualMachines",
        "blob.core.windows.net",
        ":3128",
    ):
        assert kept in out, kept
    assert re.search(r"hostname \[host-\d\]", out)
    assert "/subscriptions/subscription-1/resourceGroups/resource-group-1/" in out
    assert "[pem-1]" in out and "?sas-1" in out and '"protectedSettings": "secret-1"' in out
    assert "eth0 192.0.2.1" in out  # still an address: a documentation one
    assert redactor.report.distinct["host"] >= 2
    assert redactor.text(out) == out  # idempotent


def test_same_input_same_placeholder() -> None:
    redactor = Redactor()
    first = redactor.text("from 10.1.2.3 to 10.9.9.9 and 10.1.2.3 again")
    assert first == "from 192.0.2.1 to 192.0.2.2 and 192.0.2.1 again"
    assert redactor.report.replaced["ip"] == 3 and redactor.report.distinct["ip"] == 2


def test_no_sas_signature_or_private_key_survives_into_a_case_file() -> None:
    found = parse_case(
        "format: 1\nname: contoso\nvms:\n  - name: vm1\n    agent: 2.7.3.0\n"
        "    waagent_conf: {OS.SshDir: /etc/ssh}\n"
    )
    found = found.model_copy(
        update={"evidence": {"vms[0].agent": LOG}, "description": f"customer sent {SIG} {KEY}"}
    )
    redacted, report = redact_case(Case.model_validate(found.model_dump(mode="json")))
    text = dump_case(redacted)
    assert not re.search(r"sig=(?!sas-\d)", text)
    assert "PRIVATE KEY" not in text and "MIIEow" not in text
    assert redacted.vms[0].name == "vm1" and redacted.name == "contoso"  # structure kept
    assert redacted.vms[0].waagent_conf == {"OS.SshDir": "/etc/ssh"}
    assert parse_case(text) == redacted  # still a valid case file
    assert report.total > 0 and any("sas" in line for line in report.lines())
