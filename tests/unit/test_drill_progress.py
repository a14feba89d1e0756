"""Progress shown to people: no logger's ``file.py:NN`` column, one line per trainee step."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from lab import cli, cli_run
from lab.cli_drill import TraineeProgress


@pytest.mark.parametrize("console", [cli.console, cli_run.console])
def test_progress_lines_carry_no_source_column(console: Console) -> None:
    buffer = io.StringIO()
    copy = Console(file=buffer, width=200, log_path=console._log_render.show_path)
    copy.log("bringing up lab x")
    assert "bringing up lab x" in buffer.getvalue()
    assert ".py:" not in buffer.getvalue()


def test_trainee_progress_prints_plain_lines_off_a_terminal() -> None:
    buffer = io.StringIO()
    out = Console(file=buffer, width=200, force_terminal=False)
    progress = TraineeProgress(["t01", "t02"], out)
    with progress.shown():
        progress.phase("t01", "bringing up lab dra-t01 (1 VM(s))")
        progress.done("t01", "ready")
    lines = buffer.getvalue().splitlines()
    assert [line.split(None, 1)[1] for line in lines] == [
        "t01  bringing up lab dra-t01 (1 VM(s))",
        "t01  ready",
    ]
    assert ".py:" not in buffer.getvalue()


def test_trainee_progress_table_has_a_row_per_trainee() -> None:
    buffer = io.StringIO()
    out = Console(file=buffer, width=120, force_terminal=True)
    progress = TraineeProgress(["t01", "t02"], out)
    progress.phase("t02", "running the first backup (the symptom)")
    progress.done("t01", "ready")
    out.print(progress)
    text = buffer.getvalue()
    assert "1/2 labs ready" in text
    assert "running the first backup" in text
