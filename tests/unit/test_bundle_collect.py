"""collect-logs without a lab: the manifest's layout rules (lab.bundle.manifest), how the
agent's answer is read (lab.bundle.collect), and the CLI's input errors."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lab.bundle import collect
from lab.bundle.manifest import (
    FILE_LIMIT,
    MUST_COLLECT,
    Entry,
    Tree,
    archive_name,
    build_bundle,
    copy_patterns,
    manifest,
    roots,
    wanted,
)
from lab.cli import cli

NOW = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)


def tree(files: dict[str, bytes], dirs: tuple[str, ...] = ("/var/log", "/var/lib/waagent")) -> Tree:
    out = Tree()
    for folder in dirs:
        out.add(Entry(folder, True, 0, 0o755, 0))
    for path, data in files.items():
        out.add(Entry(path, False, len(data), 0o644, 1_700_000_000, data))
    return out


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_layout_is_the_agents_paths_without_slash_and_results_last() -> None:
    files = {
        "/var/log/waagent.log": b"2026-12-07T11:00:00.000000Z INFO Daemon hello\n",
        "/etc/waagent.conf": b"Extensions.Enabled=y\n",
        "/etc/os-release": b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "/var/lib/waagent/GoalState.1.xml": b"<GoalState/>",
        "/var/lib/waagent/TransportPrivate.pem": b"-----BEGIN PRIVATE KEY-----",
        "/var/log/azure/Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log": b"x",
    }
    built = build_bundle(tree(files), False, ["Bundle made by snaplab: test"], NOW)
    names = list(members(built.data))
    assert names[-1] == "results.txt"
    assert "var/log/waagent.log" in names and "etc/waagent.conf" in names
    assert "var/lib/waagent/GoalState.1.xml" in names
    assert "var/lib/waagent/TransportPrivate.pem" not in names  # no key is ever collected
    assert names.index("var/log/waagent.log") == 0  # the must-collect list comes first
    assert built.results.splitlines()[0] == "2026-12-07T11:00:00Z INFO Bundle made by snaplab: test"


def test_a_file_over_30_mb_is_its_tail_under_the_agents_truncated_name() -> None:
    big = b"a" * 10 + b"b" * FILE_LIMIT
    built = build_bundle(tree({"/var/log/syslog": big, "/var/log/syslog.2.gz": big}), False, [])
    found = members(built.data)
    assert archive_name("/var/log/syslog", truncated=True) == "truncated__var_log_syslog"
    assert found["truncated__var_log_syslog"] == b"b" * FILE_LIMIT
    assert not any("syslog.2.gz" in name for name in found)  # a big compressed file is left out
    assert "Discarding large binary file /var/log/syslog.2.gz" in built.results


def test_full_mode_adds_the_lease_and_lists_missing_folders() -> None:
    files = {"/var/lib/dhcp/dhclient.eth0.leases": b"lease {}", "/etc/fstab": b"# fstab"}
    assert "var/lib/dhcp/dhclient.eth0.leases" not in members(
        build_bundle(tree(files), False, []).data
    )
    built = build_bundle(tree(files), True, [])
    assert {"var/lib/dhcp/dhclient.eth0.leases", "etc/fstab"} <= set(members(built.data))
    assert "Listing of [/etc/udev/rules.d]: no such folder" in built.results


def test_roots_cover_every_pattern_with_few_folders() -> None:
    patterns = (*copy_patterns(manifest(True)), *MUST_COLLECT)
    found = roots(patterns)
    assert "/etc" in found and "/var/log" in found and "/var/lib/waagent" in found
    assert not any(r.startswith("/etc/") for r in found)  # /etc/ssh is inside /etc
    assert wanted("/var/log/azure/X/extension.log", patterns)
    assert not wanted("/var/lib/waagent/TransportPrivate.pem", patterns)


class FakeContainer:
    name = "snaplab-x-vm1"

    def __init__(self, code: int, output: bytes) -> None:
        self.answer = (code, output)
        self.argv: list[str] = []

    def exec_run(self, argv: list[str]) -> tuple[int, bytes]:
        self.argv = argv
        return self.answer


@pytest.mark.parametrize(
    ("code", "output", "done", "reason"),
    [
        (
            0,
            b"Running log collector mode normal\nLog collection successfully completed. "
            b"Archive can be found at /var/lib/waagent/logcollector/logs.zip",
            True,
            "",
        ),
        (
            0,
            b"\nusage: /usr/sbin/waagent [-verbose] [-force] -provision|-deprovision\n",
            False,
            "WALinuxAgent-2.2.47 has no -collect-logs (it printed its usage)",
        ),
        (
            124,
            b"",
            False,
            f"`waagent -collect-logs` did not finish within {collect.AGENT_TIMEOUT} s",
        ),
        (
            1,
            b"Log collection completed unsuccessfully. Error: boom\n",
            False,
            "`waagent -collect-logs` failed (exit code 1): "
            "Log collection completed unsuccessfully. Error: boom",
        ),
        (
            1,
            b"2026-12-07T11:29:01.5Z ERROR MainThread LogCollector Log collection completed "
            b"unsuccessfully. Error: timed out\n2026-12-07T11:29:01.6Z INFO MainThread "
            b"LogCollector Detailed log output can be found at /var/lib/waagent/logcollector\n",
            False,
            "`waagent -collect-logs` failed (exit code 1): "
            "Log collection completed unsuccessfully. Error: timed out",
        ),
    ],
)
def test_the_agents_answer_decides_who_makes_the_bundle(
    code: int, output: bytes, done: bool, reason: str
) -> None:
    container = FakeContainer(code, output)
    assert collect._run_agent(container, "2.2.47", full=True) == (done, reason)  # type: ignore[arg-type]
    assert container.argv[-2:] == ["-collect-logs", "-full"]


def test_collect_logs_bad_output_folder_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["collect-logs", "vm1", "-o", str(tmp_path / "no" / "x.zip")], obj={}
    )
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "does not exist" in result.output


def test_read_tree_follows_a_symlink_through_docker_archives() -> None:
    import tarfile

    def archive(entries: list[tuple[str, Any]]) -> list[bytes]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, content in entries:
                info = tarfile.TarInfo(name)
                if isinstance(content, str):
                    info.type, info.linkname = tarfile.SYMTYPE, content
                    tar.addfile(info)
                else:
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        return [buffer.getvalue()]

    archives = {
        "/etc": archive([("etc/os-release", "../usr/lib/os-release"), ("etc/hostname", b"vm1\n")]),
        "/usr/lib/os-release": archive([("os-release", b'PRETTY_NAME="Debian"\n')]),
    }

    class Api:
        def get_archive(self, _id: str, path: str) -> tuple[list[bytes], dict[str, Any]]:
            return archives[path], {}

    class Client:
        api = Api()

    class Container:
        id = "c"
        name = "vm1"
        client = Client()

    found = collect.read_tree(Container(), ["/etc"], ("/etc/*-release", "/etc/hostname"))  # type: ignore[arg-type]
    assert found.entries["/etc/os-release"].data == b'PRETTY_NAME="Debian"\n'
    assert found.glob("/etc/*-release") == ["/etc/os-release"]
