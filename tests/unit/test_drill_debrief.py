"""The debrief: its JSON, its one-file HTML, and a screenshot of it in a real browser."""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from lab.drill import browser, debrief
from lab.drill.history import Command
from lab.drill.state import DrillState, Symptom, Trainee

EVIL = "<script>alert('x')</script> && echo '<b>'"


def sample_state() -> DrillState:
    state = DrillState(
        name="drill-20261207-1100", started_at="2026-12-07T11:00:00Z", time_limit_s=2700, seed=7
    )
    fixed = Trainee(
        id="t01",
        lab="drill-20261207-1100-t01",
        vm="vm1",
        scenario="blocked-egress",
        symptom=Symptom(
            error_code="ExtensionSnapshotFailedNoNetwork",
            message="Snapshot operation failed due to no network connectivity on the "
            "virtual machine",
        ),
    )
    fixed.record("started", at="2026-12-07T11:00:00Z")
    fixed.record("hint", at="2026-12-07T11:09:00Z", step=1, of=4)
    fixed.record("check", at="2026-12-07T11:20:00Z", fixed=False, error_code=None)
    fixed.record("check", at="2026-12-07T11:31:30Z", fixed=True)
    fixed.record("fixed", at="2026-12-07T11:31:30Z")
    stuck = Trainee(
        id="t02",
        lab="drill-20261207-1100-t02",
        vm="vm1",
        scenario="agent-stopped",
        symptom=Symptom(
            error_code="GuestAgentSnapshotTaskStatusError",
            message="Could not communicate with the VM agent for snapshot status",
        ),
    )
    stuck.record("started", at="2026-12-07T11:00:00Z")
    state.trainees = [fixed, stuck]
    state.ended_at = "2026-12-07T11:45:00Z"
    return state


COMMANDS = {
    "t01": [
        Command("2026-12-07T11:02:10Z", "azureuser", "sudo -i"),
        Command("2026-12-07T11:03:00Z", "root", "iptables -S OUTPUT"),
        Command("2026-12-07T11:04:00Z", "root", EVIL),
    ],
    "t02": [],
}


def test_the_json_holds_scenario_symptom_timeline_commands_and_runbook() -> None:
    doc = debrief.build_debrief(sample_state(), COMMANDS)
    json.dumps(doc)  # JSON-ready as it is
    assert doc["summary"] == {"trainees": 2, "fixed": 1}
    t01, t02 = doc["trainees"]
    assert t01["scenario"]["id"] == "blocked-egress" and t01["scenario"]["title"]
    assert t01["scenario"]["cause"]
    assert t01["symptom"]["error_code"] == "ExtensionSnapshotFailedNoNetwork"
    assert t01["fixed"] and t01["minutes_to_fix"] == 31.5
    assert (t01["attempts"], t01["hints"]) == (2, 1)
    assert [e["kind"] for e in t01["timeline"]] == ["started", "hint", "check", "check", "fixed"]
    assert t01["timeline"][1]["minutes"] == 9.0
    assert t01["commands"][1] == {
        "at": "2026-12-07T11:03:00Z",
        "user": "root",
        "command": "iptables -S OUTPUT",
    }
    assert t01["scenario"]["runbook"]["path"] == "scenarios/blocked-egress/runbook.md"
    assert "<h2>" in t01["scenario"]["runbook"]["html"]
    assert not t02["fixed"] and t02["minutes_to_fix"] is None and t02["commands"] == []


def test_commands_as_dicts_and_a_scenario_gone_from_the_catalog() -> None:
    state = sample_state()
    state.trainees[1].scenario = "no-such-scenario"
    doc = debrief.build_debrief(state, {"t01": [{"at": "x", "user": "root", "command": "ls"}]})
    assert doc["trainees"][0]["commands"] == [{"at": "x", "user": "root", "command": "ls"}]
    gone = doc["trainees"][1]["scenario"]
    assert gone == {"id": "no-such-scenario", "title": "", "cause": "", "runbook": None}
    assert "no longer in the catalog" in debrief.render_html(doc)


def test_the_html_is_one_file_escapes_commands_and_fetches_nothing(tmp_path: Path) -> None:
    doc = debrief.build_debrief(sample_state(), COMMANDS)
    json_path, html_path = debrief.write_debrief(doc, tmp_path / "out")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(doc))
    html = html_path.read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    # Nothing outside the file: no scripts, stylesheets, images, fonts or remote links.
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", html, re.I)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", html, re.I)
    assert "url(" not in html and "@import" not in html
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', html))
    for needed in (
        "blocked-egress",
        "ExtensionSnapshotFailedNoNetwork",
        "iptables -S OUTPUT",
        "fixed in 31.5 min",
        "not fixed",
        "11:31:30",
        "fixed: False",
    ):
        assert needed in html, needed
    assert "error_code" not in html  # an empty detail field is left out


# ------------------------------------------------------------------ the real browser


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB/RGBA PNG: zlib and the five
    row filters, enough to look at what Chromium wrote."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6), (depth, color)
    step = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * step
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


@pytest.mark.skipif(browser.find() is None, reason="no chromium: `snaplab setup --browser`")
def test_a_real_browser_renders_the_debrief(tmp_path: Path) -> None:
    doc = debrief.build_debrief(sample_state(), COMMANDS)
    _, html_path = debrief.write_debrief(doc, tmp_path)
    png = browser.screenshot(html_path, tmp_path / "debrief.png", width=1000, height=1400)
    data = png.read_bytes()
    assert len(data) > 20_000, len(data)  # a blank page of this size packs to ~5 KB
    width, height, rows = png_pixels(data)
    assert (width, height) == (1000, 1400)
    step = len(rows[0]) // width
    # Sample a grid: many distinct colours and real contrast, not one flat colour.
    samples = [tuple(row[x * step : x * step + 3]) for row in rows[::7] for x in range(0, width, 7)]
    assert len(set(samples)) > 50, len(set(samples))
    brightness = [sum(p) / 3 for p in samples]
    mean = sum(brightness) / len(brightness)
    variance = sum((b - mean) ** 2 for b in brightness) / len(brightness)
    assert variance > 300, variance
    # The header band (dark blue) is at the top, the page's light wash further down.
    top = rows[10][500 * step : 500 * step + 3]
    assert top[2] > top[0] + 60, top
    dark = sum(1 for b in brightness if b < 80)
    assert dark > len(brightness) // 100, dark  # text and the header, not a white page


def test_setup_offers_the_browser_and_installs_nothing_when_it_is_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from lab.cli import cli

    assert "--browser" in CliRunner().invoke(cli, ["setup", "--help"]).output
    monkeypatch.setattr(browser, "find", lambda: Path("/usr/bin/chromium"))
    monkeypatch.setattr(browser.subprocess, "run", lambda *a, **k: pytest.fail("ran apt"))
    said: list[str] = []
    assert browser.ensure_installed(said.append) == Path("/usr/bin/chromium")
    assert said == ["chromium: already installed (/usr/bin/chromium)"]
