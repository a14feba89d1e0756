"""lab.bundle.reader over real zips made in tmp dirs: members by path and glob, and every
malformed bundle refused with one line naming the bundle (and the member)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from lab.bundle import reader
from lab.bundle.reader import open_bundle
from lab.errors import BadInput


def make_zip(tmp_path: Path, members: dict[str, bytes | str], name: str = "logs.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(BadInput) as caught:
        open_bundle(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_members_by_path_text_and_numbered_lines(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path,
        {
            "var/log/waagent.log": "first\r\nsecond\n",
            "etc/waagent.conf": "Extensions.Enabled=y\n",
            "results.txt": "ok",
        },
    )
    bundle = open_bundle(path)
    assert bundle.files() == ["etc/waagent.conf", "results.txt", "var/log/waagent.log"]
    assert bundle.lines("var/log/waagent.log") == [(1, "first"), (2, "second")]
    assert bundle.read_text("etc/waagent.conf") == "Extensions.Enabled=y\n"
    assert bundle.read_text("var/log/syslog") is None
    assert bundle.lines("var/log/syslog") == []
    assert bundle.has("results.txt")


def test_glob_star_stays_in_a_segment_and_double_star_crosses(tmp_path: Path) -> None:
    path = make_zip(
        tmp_path,
        {
            "var/log/azure/A.B/extension.log": "x",
            "var/log/azure/A.B/sub/deep.log": "x",
            "var/lib/waagent/A.B-1.0/status/0.status": "{}",
        },
    )
    bundle = open_bundle(path)
    assert bundle.glob("var/log/azure/*/*") == ["var/log/azure/A.B/extension.log"]
    assert bundle.glob("var/log/azure/**/*.log") == [
        "var/log/azure/A.B/extension.log",
        "var/log/azure/A.B/sub/deep.log",
    ]
    assert bundle.glob("var/lib/waagent/*/status/?.status") == [
        "var/lib/waagent/A.B-1.0/status/0.status"
    ]


def test_binary_junk_decodes_without_failing(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"var/log/syslog": b"ok line\n\xff\xfe\x00junk\nlast\n"})
    lines = open_bundle(path).lines("var/log/syslog")
    assert lines[0] == (1, "ok line")
    assert lines[2] == (3, "last")
    assert "\x00" not in lines[1][1]


def test_a_wrapping_top_folder_is_removed(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"logs/var/log/waagent.log": "x", "logs/etc/waagent.conf": "y"})
    assert open_bundle(path).files() == ["etc/waagent.conf", "var/log/waagent.log"]


def test_a_single_var_tree_is_not_taken_for_a_wrapper(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"var/log/waagent.log": "x", "var/lib/waagent/a": "y"})
    assert open_bundle(path).files() == ["var/lib/waagent/a", "var/log/waagent.log"]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert "no such bundle" in refusal(tmp_path / "absent.zip")
    assert "not a file" in refusal(tmp_path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "logs.zip"
    path.write_bytes(b"\x89PNG garbage" * 100)
    message = refusal(path)
    assert message.startswith("logs.zip: not a zip file")


def test_truncated_zip(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"var/log/waagent.log": "line\n" * 5000})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert refusal(path).startswith("logs.zip:")


def test_corrupt_member_names_the_member(tmp_path: Path) -> None:
    body = "".join(f"{n * 7919 % 104729:x} " for n in range(3000))
    path = make_zip(tmp_path, {"var/log/waagent.log": body})
    data = bytearray(path.read_bytes())
    at = data.index(b"waagent.log") + len("waagent.log") + 200
    data[at : at + 20] = b"\x00" * 20
    path.write_bytes(bytes(data))
    message = refusal(path)
    assert message.startswith("logs.zip: var/log/waagent.log: unreadable member")


def test_empty_zip(tmp_path: Path) -> None:
    assert "holds no files" in refusal(make_zip(tmp_path, {}))


@pytest.mark.parametrize(
    ("member", "words"),
    [
        ("../etc/passwd", "'..' refused"),
        ("var/../../x", "'..' refused"),
        ("/etc/passwd", "absolute member path refused"),
        ("C:/Windows/x", "absolute member path refused"),
        ("var\\log\\x", "backslash"),
    ],
)
def test_unsafe_names_refused(tmp_path: Path, member: str, words: str) -> None:
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("placeholder")
        info.filename = member  # ZipInfo() normalises; a hostile zip need not
        archive.writestr(info, b"x")
    message = refusal(path)
    assert message.startswith("logs.zip: ") and words in message


def test_zip_bomb_by_ratio_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"var/log/syslog": b"\x00" * (4 * 1024 * 1024)})
    message = refusal(path)
    assert message.startswith("logs.zip: var/log/syslog: compression ratio")
    assert "zip bomb" in message


def test_member_over_cap_keeps_its_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "MEMBER_CAP", 1000)
    monkeypatch.setattr(reader, "_CHUNK", 256)
    body = "".join(f"line {n}\n" for n in range(1000))
    bundle = open_bundle(make_zip(tmp_path, {"var/log/waagent.log": body}))
    text = bundle.read_text("var/log/waagent.log") or ""
    assert len(text) == 1000
    assert text.endswith("line 999\n")
    assert bundle.truncated == frozenset({"var/log/waagent.log"})


def test_total_cap_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "TOTAL_CAP", 5000)
    body = "".join(f"line {n}\n" for n in range(400))
    message = refusal(make_zip(tmp_path, {"a/x.log": body, "a/y.log": body}))
    assert message.startswith("logs.zip:") and "uncompressed" in message


def test_declared_size_that_lies_is_caught_while_streaming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "TOTAL_CAP", 2048)
    monkeypatch.setattr(reader, "_CHUNK", 512)
    body = "".join(f"{n:07d}\n" for n in range(1000))
    message = refusal(make_zip(tmp_path, {"var/log/syslog": body}))
    assert message.startswith("logs.zip: var/log/syslog: expands past")


def test_duplicate_member_refused(tmp_path: Path) -> None:
    path = tmp_path / "logs.zip"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("var/log/waagent.log", "a")
        archive.writestr("var/log/waagent.log", "b")
    assert "twice" in refusal(path)


def test_the_agents_truncated_copy_stands_for_the_file(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {"truncated_var_log_syslog": "tail\n", "var/log/waagent.log": "x\n"})
    bundle = open_bundle(path)
    assert bundle.resolve("var/log/syslog") == "truncated_var_log_syslog"
    assert bundle.lines("var/log/syslog") == [(1, "tail")]
    assert bundle.glob("var/log/syslog*") == ["truncated_var_log_syslog"]
    assert bundle.glob("var/log/waagent.log*") == ["var/log/waagent.log"]
