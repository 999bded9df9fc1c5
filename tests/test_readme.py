"""The README's promises: its two commands, and CI running the second one verbatim."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from dispatcher.cli import app

REPO = Path(__file__).resolve().parents[1]


def shell_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return [b.strip() for b in re.findall(r"```sh\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = shell_blocks()[1]
    assert "pytest" in test_command
    assert test_command in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_main_command_runs_on_the_example_workspace(workspace: Path) -> None:
    steps = [shlex.split(step) for step in shell_blocks()[0].split("&&")]
    dispatcher_steps = [s[1:] for s in steps if s[0] == "dispatcher"]
    assert [s[0] for s in dispatcher_steps] == ["import", "send"]
    for args in dispatcher_steps:
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    csv_rows = (workspace / "lists" / "weekly.csv").read_text(encoding="utf-8").count("\n") - 1
    assert len(list((workspace / "outbox").glob("*.eml"))) == csv_rows
