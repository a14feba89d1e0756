"""A trainee's access, without Docker: banner, SSH line, env file, the relay, the audit."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.drill import access, forwarder, history
from lab.drill.state import Symptom
from lab.provision.lab import ArmEndpoint
from lab.runner import drivers

SYMPTOM = Symptom(
    error_code="ExtensionSnapshotFailedNoNetwork",
    message="Snapshot operation failed due to no network connectivity on the virtual machine",
)
ARM = ArmEndpoint(
    url="https://127.0.0.1:41234",
    token="lab-token",
    ca_file="/nonexistent/ca.pem",
    subscription_id="00000000-0000-0000-0000-000000000001",
    resource_group="snaplab",
    lab="drill-x-t01",
)


def test_the_banner_states_the_symptom_in_azures_words_only() -> None:
    text = access.banner_text("vm1", SYMPTOM)
    assert "ExtensionSnapshotFailedNoNetwork" in text and SYMPTOM.message in text
    assert "vm1" in text and "check-my-solution" in text
    # Nothing of the lab or of a scenario: no lab, fault or scenario vocabulary.
    for word in ("snaplab", "scenario", "fault", "blocked", "egress", "nsg", "drill"):
        assert word not in text.lower(), word


def test_the_ssh_line_is_strict_and_uses_only_the_trainees_files(tmp_path: Path) -> None:
    files = access.trainee_files(tmp_path, "t01")
    argv = shlex.split(access.ssh_command(files, "drill-x-t01", 2201))
    assert argv[0] == "ssh" and argv[-1] == "azureuser@127.0.0.1"
    assert argv[argv.index("-p") + 1] == "2201"
    assert argv[argv.index("-i") + 1] == str(tmp_path / "trainees" / "t01" / "id_ed25519")
    options = {argv[i + 1] for i, word in enumerate(argv) if word == "-o"}
    assert "StrictHostKeyChecking=yes" in options
    assert "HostKeyAlias=drill-x-t01" in options
    assert f"UserKnownHostsFile={files.known_hosts}" in options
    assert argv[1:3] == ["-F", "none"]


def test_env_file_holds_snaplab_envs_names_and_nothing_of_the_fabric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca-bundle.pem"
    exports = access.trainee_exports(ARM, bundle, "vm1")
    # The same names and values `snaplab env` prints for the lab (az's part aside).
    monkeypatch.setattr(drivers, "ca_bundle", lambda lab, ca: bundle)
    monkeypatch.setattr(drivers, "az_exports", lambda access: {})
    full = drivers.env_exports(ARM)
    for name, value in exports.items():
        if name != "SNAPLAB_VM":
            assert full[name] == value, name
    text = access.env_file_text(exports)
    assert "SNAPLAB_ARM_TOKEN" not in text and "FABRIC" not in text
    assert "SNAPLAB_VM=vm1" in text
    # A shell reads it back to the same values.
    done = subprocess.run(
        ["bash", "-c", f". {shlex.quote(str(_write(tmp_path / 'env', text)))} && env"],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    for name, value in exports.items():
        assert seen[name] == value


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_preferred_port_follows_the_trainee_number() -> None:
    assert access.preferred_port("t01") == 2201
    assert access.preferred_port("t12") == 2212
    assert access.preferred_port("x") is None
    assert access.preferred_port("t9999") is None


def test_free_port_falls_back_when_the_preferred_one_is_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        chosen = forwarder.free_port("127.0.0.1", busy)
    assert chosen != busy and chosen > 0


@pytest.fixture
def fake_sshd() -> Iterator[int]:
    """A TCP server that greets like sshd and echoes what it gets."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                conn.settimeout(5)
                while data := conn.recv(4096):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(timeout=2)


def test_the_relay_copies_both_ways_to_its_one_target(fake_sshd: int) -> None:
    port = forwarder.free_port("127.0.0.1")
    relay = subprocess.Popen(
        [
            sys.executable,
            "-c",
            forwarder.RELAY,
            "127.0.0.1",
            str(port),
            "127.0.0.1",
            str(fake_sshd),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None and forwarder.LISTENING in relay.stdout.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(5)
            assert sock.recv(64).startswith(b"SSH-2.0-")
            payload = b"x" * 200_000
            sock.sendall(payload)
            got = b""
            deadline = time.monotonic() + 10
            while len(got) < len(payload) and time.monotonic() < deadline:
                got += sock.recv(65536)
            assert got == payload
    finally:
        relay.terminate()
        relay.wait(timeout=5)


def test_the_relay_closes_a_client_when_its_target_is_down() -> None:
    dead = forwarder.free_port("127.0.0.1")
    port = forwarder.free_port("127.0.0.1")
    relay = subprocess.Popen(
        [sys.executable, "-c", forwarder.RELAY, "127.0.0.1", str(port), "127.0.0.1", str(dead)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert relay.stdout is not None and forwarder.LISTENING in relay.stdout.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(10)
            assert sock.recv(64) == b""
    finally:
        relay.terminate()
        relay.wait(timeout=5)


# ------------------------------------------------------------------ the shell audit


def _record(message: str, stamp_us: int, tag: str = history.TAG) -> str:
    return json.dumps(
        {"SYSLOG_IDENTIFIER": tag, "MESSAGE": message, "__REALTIME_TIMESTAMP": str(stamp_us)}
    )


def test_journal_records_become_commands_and_noise_is_skipped() -> None:
    lines = [
        # `sudo -i` is logged when its root shell ends, with the time it was typed.
        _record("azureuser 1795999990: sudo -i", 1_796_000_004_000_000),
        "not json",
        _record("root 1796000001: iptables -S OUTPUT", 1_796_000_001_500_000),
        _record("root ??: ls", 1_796_000_001_700_000),
        _record("something else", 1_796_000_002_000_000, tag="sshd"),
        json.dumps(["a list"]),
        _record("no separator", 1_796_000_003_000_000),
    ]
    found = history.parse_journal(lines)
    assert [(c.user, c.command) for c in found] == [
        ("azureuser", "sudo -i"),
        ("root", "iptables -S OUTPUT"),
        ("root", "ls"),  # no stamp from bash: the journal's time
        ("", "no separator"),
    ]
    assert found[0].at == "2026-11-30T00:53:10Z"
    assert found[2].at == "2026-11-30T00:53:21Z"
    assert found[1].to_json() == {
        "at": found[1].at,
        "user": "root",
        "command": "iptables -S OUTPUT",
    }


def test_the_audit_script_logs_each_new_prompt_entry_once(tmp_path: Path) -> None:
    """The profile script in a real interactive bash, with ``logger`` replaced by a
    function writing to a file: the first prompt logs nothing (earlier sessions), each
    new command once, an empty Enter nothing."""
    log = tmp_path / "log"
    rc = tmp_path / "rc"
    rc.write_text(
        f'logger() {{ shift 3; echo "$*" >> {shlex.quote(str(log))}; }}\n'
        "HISTFILE=/dev/null\n" + history.PROFILE_SCRIPT
    )
    typed = "echo one\n\necho two three\nexit\n"
    subprocess.run(
        ["bash", "--rcfile", str(rc), "-i"],
        input=typed,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PS1": "$ ", "HOME": str(tmp_path), "TERM": "dumb"},
    )
    user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    logged = [re.sub(r" \d+: ", ": ", line) for line in log.read_text().splitlines()]
    assert logged == [f"{user}: echo one", f"{user}: echo two three"]
    stamp = int(log.read_text().split()[1].rstrip(":"))
    assert abs(stamp - time.time()) < 60
