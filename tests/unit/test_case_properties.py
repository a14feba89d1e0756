"""Hypothesis: random valid case files survive the round trips, and no bundle, however
broken, gets more than one line out of ``snaplab case import``.

What is proved (a lab-free ``export`` — the bundle a VM in the case's state would give —
is a real lab's job, done by the integration tests):

1. case → YAML (``dump_case``) → case is the identity, for every field of C1's model;
2. case → a synthetic bundle holding what the agent's collector copies for the fields a
   bundle carries (the agent's log naming its version, ``etc/waagent.conf`` with the
   case's settings over the version's shipped file and its ``HttpProxy.*``, the VMSnapshot
   handler's ``HandlerState`` and status file) → ``import`` → the same agent, waagent.conf
   differences, agent proxy and extension (type, version, handler state, status code);
3. malformed bundles (truncated zips, random bytes, a zip without the agent's log, binary
   garbage or a huge member in it) → exit 2 and one ``Error:`` line, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.bundle.conf_defaults import defaults_for
from lab.cases.importer import import_bundle
from lab.cases.load import dump_case, parse_case
from lab.cases.model import VMSNAPSHOT_LINUX, Case
from lab.cli import cli
from lab.faults import known_fault_ids
from lab.provision.guest_variants import GUEST_VARIANTS
from lab.provision.images import AGENT_FLAVORS

AGENTS = sorted(AGENT_FLAVORS)
CONF_KEYS = (
    "Extensions.Enabled",
    "Logs.Verbose",
    "AutoUpdate.Enabled",
    "OS.EnableFirewall",
    "Extensions.GoalStatePeriod",
    "Provisioning.Agent",
    "ResourceDisk.SwapSizeMB",
)
CONF_VALUES = ("y", "n", "auto", "waagent", "12", "None", "2048")
SETTLED = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

names = st.integers(min_value=1, max_value=3).map(lambda n: [f"vm{i}" for i in range(1, n + 1)])
conf = st.dictionaries(st.sampled_from(CONF_KEYS), st.sampled_from(CONF_VALUES), max_size=4)
proxy = st.none() | st.builds(
    lambda host, port, where: {"http": f"http://{host}:{port}", "where": where},
    st.sampled_from(("proxy.snaplab.internal", "host-1", "10.0.0.9")),
    st.integers(min_value=1, max_value=65535),
    st.sampled_from(("system", "agent")),
)
extension = st.builds(
    lambda version, state, code: {
        "type": VMSNAPSHOT_LINUX,
        "version": version,
        "handler_state": state,
        **({"status_code": code} if code is not None else {}),
    },
    st.sampled_from(("1.0.91.0", "1.0.92.0", "1.0.9225.0")),
    st.sampled_from(("enabled", "not-installed", "failed", "files-unreadable", "update-failed")),
    st.none() | st.sampled_from((0, 1, 76, 122, 402)),
)


@st.composite
def vms(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for name in draw(names):
        agent = draw(st.sampled_from(AGENTS))
        services = ["running", "stopped"] + (["crashed"] if agent == "2.2.47" else [])
        vm: dict[str, Any] = {
            "name": name,
            "agent": agent,
            "guest": draw(st.sampled_from(("debian", *GUEST_VARIANTS))),
            "waagent_conf": draw(conf),
            "agent_service": draw(st.sampled_from(services)),
            "dhcp": draw(st.booleans()),
            "extensions": draw(st.lists(extension, max_size=1)),
            "load": {
                "cpu_busy": draw(st.booleans()),
                **(
                    {"memory_free_mib": m}
                    if (m := draw(st.none() | st.integers(0, 512))) is not None
                    else {}
                ),
            },
            "prepost_script": {"hangs": draw(st.booleans())},
            "power": draw(st.sampled_from(("running", "shut-down-inside"))),
        }
        if (value := draw(proxy)) is not None:
            vm["proxy"] = value
        out.append(vm)
    return out


@st.composite
def cases(draw: st.DrawFn) -> Case:
    machines = draw(vms())
    vm_names = [vm["name"] for vm in machines]
    faults = draw(
        st.lists(
            st.builds(
                lambda fault, vm: {"fault": fault, "vm": vm},
                st.sampled_from(known_fault_ids()),
                st.sampled_from(vm_names),
            ),
            max_size=3,
        )
    )
    data: dict[str, Any] = {
        "format": 1,
        "name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)),
        "vms": machines,
        "faults": faults,
        "nsg": {
            "rules": draw(
                st.lists(
                    st.builds(
                        lambda priority, access: {
                            "name": f"Rule{priority}",
                            "access": access,
                            "priority": priority,
                            "destination": "Storage",
                        },
                        st.integers(100, 4096),
                        st.sampled_from(("Allow", "Deny")),
                    ),
                    max_size=2,
                    unique_by=lambda rule: rule["priority"],
                )
            )
        },
        "observed": {
            "distro": "Debian GNU/Linux 12 (bookworm)",
            "errors": [{"file": "var/log/waagent.log", "line": 3, "text": "ERROR x"}],
        },
        "evidence": {"vms[0].agent": "var/log/waagent.log:1: WALinuxAgent"},
    }
    if draw(st.booleans()):
        data["backup"] = {"policy": {"name": "DailyPolicy", "time": "02:00"}}
    if draw(st.booleans()):
        data["symptom"] = {
            "error_code": "GuestAgentSnapshotTaskStatusError",
            "sub_task": "Take Snapshot",
            "started": "2026-12-01T02:00:00Z",
        }
    return Case.model_validate(data)


@SETTLED
@given(cases())
def test_case_to_yaml_to_case_keeps_every_field(found: Case) -> None:
    assert parse_case(dump_case(found)) == found


HANDLER_STATE_TEXT = {"enabled": "Enabled", "not-installed": "NotInstalled"}


def synthetic_bundle(vm: dict[str, Any]) -> bytes:
    """What the agent's collector would copy of a VM in ``vm``'s state, for the fields a
    bundle carries."""
    agent = vm["agent"]
    shipped = dict(defaults_for(agent).shipped)
    settings_ = {**shipped, **vm["waagent_conf"]}
    if vm.get("proxy", {}).get("where") == "agent":
        host_port = vm["proxy"]["http"].removeprefix("http://")
        host, _, port = host_port.partition(":")
        settings_["HttpProxy.Host"], settings_["HttpProxy.Port"] = host, port
    conf_text = "# a customer's waagent.conf\n" + "".join(
        f"{k}={v}\n" for k, v in settings_.items()
    )
    members = {
        "var/log/waagent.log": (
            "2026-12-07T10:00:00.000000Z INFO ExtHandler ExtHandler Agent "
            f"WALinuxAgent-{agent} is running as the goal state agent\n"
        ),
        "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "etc/waagent.conf": conf_text,
        "results.txt": "2026-12-07T10:00:05Z INFO Starting log collection\n",
    }
    for extension in vm["extensions"]:
        base = f"var/lib/waagent/{extension['type']}-{extension['version']}"
        members[f"{base}/config/HandlerState"] = HANDLER_STATE_TEXT[extension["handler_state"]]
        if "status_code" in extension:
            status = [{"status": {"status": "success", "code": extension["status_code"]}}]
            members[f"{base}/status/0.status"] = json.dumps(status)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


bundle_vms = vms().map(lambda machines: machines[0])


@SETTLED
@given(
    vm=bundle_vms.filter(
        lambda vm: all(e["handler_state"] in HANDLER_STATE_TEXT for e in vm["extensions"])
    )
)
def test_case_to_bundle_to_case_keeps_what_a_bundle_carries(
    vm: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "logs.zip"
    path.write_bytes(synthetic_bundle(vm))
    imported = import_bundle(path, redact=False).case.vms[0]
    shipped = defaults_for(vm["agent"]).shipped
    assert imported.agent == vm["agent"]
    assert imported.waagent_conf == {
        k: v for k, v in vm["waagent_conf"].items() if shipped.get(k) != v
    }
    if vm.get("proxy", {}).get("where") == "agent":
        assert imported.proxy is not None and imported.proxy.http == vm["proxy"]["http"]
        assert imported.proxy.where == "agent"
    else:
        assert imported.proxy is None
    got = [e.model_dump(exclude_defaults=True) for e in imported.extensions]
    want = [
        {k: v for k, v in e.items() if k != "handler_state" or v != "enabled"}
        for e in vm["extensions"]
    ]
    assert got == want


def one_line_exit_2(path: Path) -> None:
    result = CliRunner().invoke(cli, ["case", "import", str(path)], obj={})
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD = synthetic_bundle({"agent": "2.7.3.0", "waagent_conf": {}, "extensions": [], "name": "vm1"})


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=len(GOOD) - 1))
def test_a_truncated_bundle_is_one_line(cut: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "logs.zip"
        path.write_bytes(GOOD[:cut])
        one_line_exit_2(path)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_are_one_line(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "logs.zip"
        path.write_bytes(data)
        one_line_exit_2(path)


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=1, max_size=2048))
def test_binary_garbage_as_the_agents_log_is_one_line(garbage: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "logs.zip"
        path.write_bytes(zip_of({"var/log/waagent.log": garbage, "etc/waagent.conf": garbage}))
        one_line_exit_2(path)


def test_missing_files_and_no_file_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "logs.zip"
    path.write_bytes(zip_of({"etc/os-release": b'PRETTY_NAME="x"\n'}))
    one_line_exit_2(path)
    one_line_exit_2(tmp_path / "absent.zip")


def test_a_huge_member_is_one_line_or_imports(tmp_path: Path) -> None:
    """A waagent.log over the collector's 30 MB is read as its tail: the bundle imports
    when the tail names the agent; a 150 MB+ bundle is refused with one line."""
    log = os.urandom(31 * 1024 * 1024) + (
        b"\n2026-12-07T10:00:00.000000Z INFO ExtHandler ExtHandler Agent "
        b"WALinuxAgent-2.7.3.0 is running as the goal state agent\n"
    )
    path = tmp_path / "logs.zip"
    path.write_bytes(zip_of({"var/log/waagent.log": log}, zipfile.ZIP_STORED))
    assert import_bundle(path, redact=False).case.vms[0].agent == "2.7.3.0"
    chunk = os.urandom(31 * 1024 * 1024)
    path.write_bytes(zip_of({f"var/log/big{i}.log": chunk for i in range(5)}, zipfile.ZIP_STORED))
    one_line_exit_2(path)
