"""SSH into lab guests: the lab's key files, known_hosts, the ssh command lines, the CLI."""

from __future__ import annotations

import io
import shlex
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from lab import cli_ssh
from lab.cli import cli
from lab.errors import LabNotFound, ProvisionFailed, UnknownVm
from lab.platform.roster import GuestEntry, Roster
from lab.provision import ssh_guest
from lab.provision.ssh_client import ROOT_STEP, SshTarget, lab_targets, target_for
from lab.provision.ssh_keys import (
    LabSshFiles,
    create_key_pair,
    host_key,
    lab_ssh_files,
    read_known_hosts,
    write_known_hosts,
)
from lab.runbook import Step, StepPlace, command_for, execute_command

HOST_KEY = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    .decode()
)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SNAPLAB_STATE_DIR", str(tmp_path / "labs"))
    return tmp_path / "labs"


def roster(*names: str) -> Roster:
    guests = tuple(
        GuestEntry(name, f"10.213.7.{10 + i}", "02:42:00:00:00:00", "2.7.3.0", f"snaplab-l1-{name}")
        for i, name in enumerate(names)
    )
    return Roster(lab="l1", subnet="10.213.7.0/24", fabric_ip="10.213.7.2",
                  storage_ip="10.213.7.3", guests=guests)  # fmt: skip


# --- the lab's key pair and known_hosts -------------------------------------------------


def test_the_key_pair_is_private_to_its_owner_and_loads_as_openssh(state: Path) -> None:
    files = lab_ssh_files("l1")
    line = create_key_pair(files, "azureuser@l1")
    assert files.folder == state / "l1" / "ssh"
    assert stat.S_IMODE(files.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600
    assert line.startswith("ssh-ed25519 ") and line.endswith(" azureuser@l1")
    assert files.public_key.read_text() == line + "\n"
    key = serialization.load_ssh_private_key(files.private_key.read_bytes(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    assert line.split()[:2] == public.decode().split()


def test_a_second_pair_replaces_the_first_still_private(state: Path) -> None:
    files = lab_ssh_files("l1")
    first = create_key_pair(files, "a")
    files.private_key.chmod(0o644)
    assert create_key_pair(files, "a") != first
    assert stat.S_IMODE(files.private_key.stat().st_mode) == 0o600


def test_a_host_key_loses_its_comment_and_must_be_ed25519() -> None:
    assert host_key(f"{HOST_KEY} root@vm1\n", "vm1") == HOST_KEY
    with pytest.raises(ProvisionFailed, match=r"^vm1: not an ssh-ed25519 public key"):
        host_key("ssh-rsa AAAAB3NzaC1yc2E= root@vm1", "vm1")
    with pytest.raises(ProvisionFailed, match="does not decode"):
        host_key("ssh-ed25519 !!!notbase64", "vm1")
    with pytest.raises(ProvisionFailed, match="does not decode"):
        host_key("ssh-ed25519 AAAA", "vm1")  # base64, but no key blob


def test_known_hosts_has_one_line_per_guest_address(tmp_path: Path) -> None:
    files = LabSshFiles(tmp_path / "ssh")
    assert read_known_hosts(files) == {}
    write_known_hosts(files, {"10.213.7.11": HOST_KEY, "10.213.7.10": HOST_KEY})
    lines = files.known_hosts.read_text().splitlines()
    assert lines == [f"10.213.7.10 {HOST_KEY}", f"10.213.7.11 {HOST_KEY}"]
    assert read_known_hosts(files) == {"10.213.7.10": HOST_KEY, "10.213.7.11": HOST_KEY}


# --- the ssh command lines --------------------------------------------------------------


def options(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_ssh_uses_the_lab_key_and_known_hosts_strictly(tmp_path: Path) -> None:
    files = LabSshFiles(tmp_path / "ssh")
    argv = SshTarget("vm1", "10.213.7.10", files).argv(["waagent", "--version"])
    assert argv[:5] == ["/usr/bin/ssh", "-F", "none", "-i", str(files.private_key)]
    assert argv[-3:] == ["azureuser@10.213.7.10", "waagent", "--version"]
    opts = options(argv)
    assert opts["StrictHostKeyChecking"] == "yes"
    assert opts["UserKnownHostsFile"] == str(files.known_hosts)
    assert opts["GlobalKnownHostsFile"] == "/dev/null"
    assert opts["IdentitiesOnly"] == "yes" and opts["UpdateHostKeys"] == "no"
    assert opts["BatchMode"] == "no"
    assert options(SshTarget("vm1", "10.213.7.10", files).argv(batch=True))["BatchMode"] == "yes"


def test_a_step_runs_in_roots_login_shell_reading_the_step_from_stdin(tmp_path: Path) -> None:
    argv = SshTarget("vm1", "10.213.7.10", LabSshFiles(tmp_path)).step_argv()
    assert options(argv)["BatchMode"] == "yes"
    assert argv[-2] == "azureuser@10.213.7.10"
    # ssh hands the last word to the admin's login shell, which splits it again.
    assert shlex.split(argv[-1]) == list(ROOT_STEP)
    assert ROOT_STEP[:3] == ("sudo", "-n", "-i")


def test_the_root_shells_command_runs_the_whole_step_with_bash_e() -> None:
    """What root's shell runs (ROOT_STEP after sudo -i): the step is read whole, then run
    with ``bash -e``; a command reading stdin gets nothing instead of the step's rest."""
    script = 'read -r line || echo "stdin is empty"\necho "two words"\nfalse\necho never\n'
    done = subprocess.run(
        list(ROOT_STEP[3:]), input=script, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stdout == "stdin is empty\ntwo words\n"


def test_lab_targets_name_every_guest_and_unknown_vms_are_bad_input(state: Path) -> None:
    lab = roster("vm1", "vm2")
    targets = lab_targets(lab)
    assert {name: t.address for name, t in targets.items()} == {
        "vm1": "10.213.7.10",
        "vm2": "10.213.7.11",
    }
    with pytest.raises(UnknownVm, match=r"^lab 'l1' has no VM named 'vm9' \(it has: vm1, vm2\)"):
        target_for(lab, "vm9")
    with pytest.raises(LabNotFound, match="has no SSH key"):
        target_for(lab, "vm1")
    files = lab_ssh_files("l1")
    create_key_pair(files, "x")
    write_known_hosts(files, {"10.213.7.10": HOST_KEY})
    assert target_for(lab, "vm1").files == files


# --- guest steps in the runbook executor ------------------------------------------------


def test_a_guest_step_goes_over_ssh_with_its_code_on_stdin(tmp_path: Path) -> None:
    files = LabSshFiles(tmp_path)
    place = StepPlace(
        guests={
            "vm1": SshTarget("vm1", "10.0.0.10", files),
            "vm2": SshTarget("vm2", "10.0.0.11", files),
        },
        default_vm="vm1",
        platform_env={},
        cwd=tmp_path,
    )
    command = command_for(Step(1, "guest", "bash", "echo hi\n"), place)
    assert command.argv == place.guests["vm1"].step_argv()
    assert command.stdin == "echo hi\n"
    other = command_for(Step(2, "guest", "bash", "true\n", vm="vm2"), place)
    assert "azureuser@10.0.0.11" in other.argv
    assert command_for(Step(3, "platform", "bash", "true\n"), place).stdin is None


def test_a_commands_stdin_is_written_and_closed(tmp_path: Path) -> None:
    code, output, note = execute_command(["cat"], None, tmp_path, 10, None, "line 1\nline 2\n")
    assert (code, output, note) == (0, "line 1\nline 2\n", "")
    code, output, _ = execute_command(["cat"], None, tmp_path, 10, None)
    assert (code, output) == (0, "")


def test_a_command_that_never_reads_its_stdin_still_times_out(tmp_path: Path) -> None:
    code, _, note = execute_command(["sleep", "30"], None, tmp_path, 0.5, None, "x" * 1_000_000)
    assert code is None and note == "timed out after 0.5 s"


# --- the guest side ---------------------------------------------------------------------

PASSWD = "root:x:0:0:root:/root:/bin/bash\nazureuser:x:1000:1000::/home/azureuser:/bin/bash\n"


def test_the_admin_account_comes_from_the_images_passwd() -> None:
    assert ssh_guest.account(PASSWD, "azureuser", "c") == (1000, 1000, "/home/azureuser")
    with pytest.raises(ProvisionFailed, match=r"^c: the image has no bob account"):
        ssh_guest.account(PASSWD, "bob", "c")


class FakeApi:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.put: list[tuple[str, bytes]] = []

    def get_archive(self, container: str, path: str) -> tuple[Any, dict[str, Any]]:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(Path(path).name)
            info.size = len(self.files[path])
            tar.addfile(info, io.BytesIO(self.files[path]))
        return iter([buffer.getvalue()]), {}

    def put_archive(self, container: str, path: str, data: bytes) -> bool:
        self.put.append((path, data))
        return True


class FakeContainer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.id = "c1"
        self.name = "snaplab-l1-vm1"
        self.client = type("Client", (), {"api": FakeApi(files)})()


def test_the_admin_key_goes_in_as_the_provisioning_agent_leaves_it() -> None:
    container = FakeContainer({"/etc/passwd": PASSWD.encode()})
    ssh_guest.install_admin_key(container, "ssh-ed25519 AAAA azureuser@l1")  # type: ignore[arg-type]
    [(path, data)] = container.client.api.put
    assert path == "/"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        folder = members["home/azureuser/.ssh"]
        keys = members["home/azureuser/.ssh/authorized_keys"]
        assert folder.isdir() and folder.mode == 0o700 and (folder.uid, folder.gid) == (1000, 1000)
        assert keys.mode == 0o600 and (keys.uid, keys.gid) == (1000, 1000)
        handle = tar.extractfile(keys)
        assert handle is not None and handle.read() == b"ssh-ed25519 AAAA azureuser@l1\n"


def test_a_file_is_read_out_of_band_through_docker() -> None:
    container = FakeContainer({ssh_guest.HOST_KEY_PATH: f"{HOST_KEY} root@vm1\n".encode()})
    text = ssh_guest.read_file(container, ssh_guest.HOST_KEY_PATH)  # type: ignore[arg-type]
    assert host_key(text.decode(), "vm1") == HOST_KEY


def test_sshd_answers_only_with_an_ssh_banner() -> None:
    import socket
    import threading

    def serve(banner: bytes) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def answer() -> None:
            conn, _ = server.accept()
            conn.sendall(banner)
            conn.close()
            server.close()

        threading.Thread(target=answer, daemon=True).start()
        return int(server.getsockname()[1])

    assert ssh_guest.sshd_answers("127.0.0.1", serve(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n"))
    assert not ssh_guest.sshd_answers("127.0.0.1", serve(b"HTTP/1.1 400 Bad Request\r\n"))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()
    assert not ssh_guest.sshd_answers("127.0.0.1", port, timeout=0.5)


# --- snaplab ssh ------------------------------------------------------------------------


@pytest.fixture
def one_lab(monkeypatch: pytest.MonkeyPatch, state: Path) -> list[list[str]]:
    execs: list[list[str]] = []
    monkeypatch.setattr(cli_ssh.engines, "connect_for_lab", lambda lab: object())
    monkeypatch.setattr(cli_ssh.labs, "resolve_lab", lambda client, name: name or "l1")
    monkeypatch.setattr(cli_ssh.labs, "roster_of", lambda client, lab: roster("vm1"))
    monkeypatch.setattr(cli_ssh, "ensure_client", lambda: Path("/usr/bin/ssh"))
    monkeypatch.setattr(cli_ssh.os, "execv", lambda path, argv: execs.append([path, *argv]))
    files = lab_ssh_files("l1")
    create_key_pair(files, "x")
    write_known_hosts(files, {"10.213.7.10": HOST_KEY})
    return execs


def test_snaplab_ssh_execs_the_openssh_client_with_the_command(one_lab: list[list[str]]) -> None:
    result = CliRunner().invoke(cli, ["ssh", "vm1", "--", "waagent", "--version"])
    assert result.exit_code == 0, result.output
    [argv] = one_lab
    assert argv[:2] == ["/usr/bin/ssh", "/usr/bin/ssh"]
    assert argv[-3:] == ["azureuser@10.213.7.10", "waagent", "--version"]
    assert options(argv)["BatchMode"] == "no"


def test_snaplab_ssh_without_a_command_logs_in(one_lab: list[list[str]]) -> None:
    result = CliRunner().invoke(cli, ["ssh", "--lab", "l1", "vm1"])
    assert result.exit_code == 0, result.output
    assert one_lab[0][-1] == "azureuser@10.213.7.10"


def test_snaplab_ssh_takes_the_lab_from_snaplab_lab(
    one_lab: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runbook step has $SNAPLAB_LAB; with several labs up, that is the one meant."""
    asked: list[str | None] = []
    monkeypatch.setattr(
        cli_ssh.labs, "resolve_lab", lambda client, name: asked.append(name) or "l1"
    )
    monkeypatch.setenv("SNAPLAB_LAB", "l1")
    result = CliRunner().invoke(cli, ["ssh", "vm1", "--", "true"])
    assert result.exit_code == 0, result.output
    assert asked == ["l1"]


def test_snaplab_ssh_to_an_unknown_vm_is_one_line_exit_2(one_lab: list[list[str]]) -> None:
    result = CliRunner().invoke(cli, ["ssh", "vm7", "--", "true"])
    assert result.exit_code == 2
    assert result.output == ("Error: lab 'l1' has no VM named 'vm7' (it has: vm1)\n")
    assert one_lab == []


def test_snaplab_ssh_to_an_unknown_lab_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_ssh.engines, "connect_for_lab", lambda lab: object())
    monkeypatch.setattr(cli_ssh.labs, "lab_names", lambda client: ["l1"])
    result = CliRunner().invoke(cli, ["ssh", "vm1", "--lab", "nope", "--", "true"])
    assert result.exit_code == 2
    assert result.output == "Error: no lab named 'nope' (running: l1)\n"


def test_every_guest_image_has_sshd_and_sudo_but_no_host_key_or_password_login() -> None:
    from lab.provision import images

    for version in images.AGENT_FLAVORS:
        recipe = images.guest_recipe(version)
        assert {"openssh-server", "sudo"} <= set(recipe.rootfs.packages)
        assert ("ADMIN_USER", ssh_guest.ADMIN_USER) in recipe.build_args
    guest = images.RECIPES_DIR / "guest"
    dockerfile = (guest / "Dockerfile").read_text()
    assert "rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub" in dockerfile
    assert "NOPASSWD: ALL" in dockerfile
    settings = dict(
        line.split(None, 1)
        for line in (guest / "sshd-key-login.conf").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings == {
        "HostKey": ssh_guest.HOST_KEY_PATH.removesuffix(".pub"),
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "PermitRootLogin": "no",
    }
