"""The lab's package mirror: reading .debs, the repository layout and index, serving it."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.test import Client

from lab.platform.package_mirror import (
    MirrorApp,
    build,
    control_fields,
    deb_control,
    main,
    pool_path,
    source_line,
)

WHEN = datetime(2026, 11, 28, 0, 30, tzinfo=UTC)
CONTROL = (
    "Package: waagent\n"
    "Version: 2.7.3.0-4.1\n"
    "Architecture: all\n"
    "Maintainer: Debian Cloud Team <debian-cloud@lists.debian.org>\n"
    "Installed-Size: 1024\n"
    "Depends: python3-distro, python3:any, openssl\n"
    "Description: Azure Linux Agent\n"
    " The agent that talks to the Azure fabric.\n"
)


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_deb(control: str = CONTROL, compression: str = "xz") -> bytes:
    """A .deb as dpkg-deb writes it: debian-binary, control.tar.*, data.tar.*."""
    suffix = {"xz": "xz", "gz": "gz"}[compression]
    return (
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n")
        + _ar_member(f"control.tar.{suffix}", _tar({"./control": control.encode()}, f"w:{suffix}"))
        + _ar_member("data.tar.xz", _tar({"./usr/sbin/waagent": b"#!/bin/sh\n"}, "w:xz"))
    )


@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_control_is_read_from_the_package(compression: str) -> None:
    control = deb_control(fake_deb(compression=compression))
    fields = control_fields(control)
    assert fields["Package"] == "waagent"
    assert fields["Version"] == "2.7.3.0-4.1"
    assert fields["Description"].endswith("talks to the Azure fabric.")


def test_not_a_package_is_refused() -> None:
    with pytest.raises(ValueError):
        deb_control(b"PK\x03\x04 a zip")
    with pytest.raises(ValueError):
        deb_control(b"!<arch>\n" + _ar_member("debian-binary", b"2.0\n"))


def test_pool_layout_is_debians() -> None:
    assert pool_path({"Package": "waagent"}, "w.deb") == "pool/main/w/waagent/w.deb"
    assert pool_path({"Package": "libfoo1", "Source": "libfoo (1.2-1)"}, "l.deb") == (
        "pool/main/libf/libfoo/l.deb"
    )


def _repo(tmp_path: Path) -> tuple[Path, bytes]:
    deb = fake_deb()
    incoming = tmp_path / "incoming" / "bookworm"
    incoming.mkdir(parents=True)
    (incoming / "waagent_2.7.3.0-4.1_all.deb").write_bytes(deb)
    root = tmp_path / "mirror" / "debian"
    counts = build(root, tmp_path / "incoming", ["bookworm", "trixie"], WHEN)
    assert counts == {"bookworm": 1, "trixie": 0}
    return root, deb


def test_build_writes_a_debian_repository(tmp_path: Path) -> None:
    root, deb = _repo(tmp_path)
    pooled = root / "pool/main/w/waagent/waagent_2.7.3.0-4.1_all.deb"
    assert pooled.read_bytes() == deb
    assert not list((tmp_path / "incoming" / "bookworm").glob("*.deb"))

    packages = (root / "dists/bookworm/main/binary-amd64/Packages").read_text()
    stanza = control_fields(packages)
    assert packages.startswith("Package: waagent\n")
    assert stanza["Filename"] == "pool/main/w/waagent/waagent_2.7.3.0-4.1_all.deb"
    assert stanza["Size"] == str(len(deb))
    assert stanza["SHA256"] == hashlib.sha256(deb).hexdigest()
    assert stanza["MD5sum"] == hashlib.md5(deb).hexdigest()
    packed = (root / "dists/bookworm/main/binary-amd64/Packages.gz").read_bytes()
    assert gzip.decompress(packed).decode() == packages
    assert (root / "dists/trixie/main/binary-amd64/Packages").read_text() == ""


def test_release_lists_the_hashes_apt_checks(tmp_path: Path) -> None:
    root, _ = _repo(tmp_path)
    release = (root / "dists/bookworm/Release").read_text()
    assert "Suite: bookworm\n" in release and "Codename: bookworm\n" in release
    assert "Date: Sat, 28 Nov 2026 00:30:00 GMT\n" in release
    assert "Architectures: amd64\n" in release and "Components: main\n" in release
    sha_section = release.split("SHA256:\n", 1)[1]
    for name in ("Packages", "Packages.gz"):
        data = (root / f"dists/bookworm/main/binary-amd64/{name}").read_bytes()
        line = f" {hashlib.sha256(data).hexdigest()} {len(data):>16} main/binary-amd64/{name}"
        assert line in sha_section.splitlines()


def test_source_line_names_the_lab_mirror() -> None:
    assert source_line("bookworm") == (
        "deb [trusted=yes] http://debian-mirror.snaplab.internal:8081/debian bookworm main"
    )


def test_mirror_app_serves_the_repository_read_only(tmp_path: Path) -> None:
    root, deb = _repo(tmp_path)
    client = Client(MirrorApp(root.parent))
    got = client.get("/debian/pool/main/w/waagent/waagent_2.7.3.0-4.1_all.deb")
    assert got.status_code == 200 and got.data == deb
    head = client.head("/debian/dists/bookworm/Release")
    assert head.status_code == 200 and head.data == b""
    assert int(head.headers["Content-Length"]) == (root / "dists/bookworm/Release").stat().st_size
    ranged = client.get("/debian/dists/bookworm/Release", headers={"Range": "bytes=0-5"})
    assert ranged.status_code == 206 and ranged.data == b"Origin"
    assert client.get("/debian/dists/bookworm/InRelease").status_code == 404
    assert client.get("/debian/../../etc/passwd").status_code == 404
    assert client.get("/debian/dists").status_code == 404  # folders are not listed
    assert client.put("/debian/dists/bookworm/Release", data=b"x").status_code == 405


def test_build_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in" / "bookworm").mkdir(parents=True)
    (tmp_path / "in" / "bookworm" / "w.deb").write_bytes(fake_deb())
    argv = ["build", "--root", str(tmp_path / "r"), "--incoming", str(tmp_path / "in")]
    assert main([*argv, "--suite", "bookworm"]) == 0
    assert "bookworm: 1 package(s)" in capsys.readouterr().out
    (tmp_path / "in" / "bookworm" / "bad.deb").write_bytes(b"not a deb")
    assert main([*argv, "--suite", "bookworm"]) == 1


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb not installed")
def test_a_package_built_by_dpkg_deb_reads_the_same(tmp_path: Path) -> None:
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(CONTROL.replace("Installed-Size: 1024\n", ""))
    (tree / "usr").mkdir()
    out = tmp_path / "w.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(out)], check=True)
    ours = control_fields(deb_control(out.read_bytes()))
    theirs = subprocess.run(
        ["dpkg-deb", "--field", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert ours == control_fields(theirs)
