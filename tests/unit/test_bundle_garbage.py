"""Garbage where a bundle's files should be: diagnose_bundle never raises, no check
hides an exception behind "not observed", and no unobserved check passes."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.bundle.diagnose import diagnose_bundle
from lab.bundle.reader import open_bundle

H = "var/lib/waagent/Microsoft.Azure.RecoveryServices.VMSnapshotLinux-1.0.92.0"
MEMBERS = (
    "var/log/waagent.log",
    "var/log/waagent.log.1.gz",
    "etc/waagent.conf",
    "var/lib/waagent/ExtensionsConfig.2.xml",
    "var/lib/waagent/waagent_status.json",
    "var/lib/dhcp/dhclient.eth0.leases",
    "etc/network/interfaces",
    "var/log/syslog",
    f"{H}/config/HandlerState",
    f"{H}/config/HandlerStatus",
    f"{H}/config/0.settings",
    f"{H}/status/0.status",
    "results.txt",
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.dictionaries(
        st.sampled_from(MEMBERS),
        st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
        min_size=1,
    )
)
def test_junk_members_never_raise(tmp_path: Path, members: dict[str, bytes]) -> None:
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    found = diagnose_bundle(open_bundle(path))
    for check in found.checks:
        assert check.detail
        assert not re.match(r"not observed: \w*(Error|Exception)\b", check.detail), check
        assert not check.detail.startswith("not observed: ") or not check.passed
    assert "\n" not in "".join(found.cause_ids)
