"""The CLI as a user meets it: help everywhere, honest exit codes, clear messages."""

from __future__ import annotations

import csv
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from dispatcher import commands
from dispatcher.cli import app, load_command
from dispatcher.commands import COMMANDS
from dispatcher.commands.send import Reasons
from dispatcher.delivery.queue import Claimed, Outcome
from dispatcher.store import Store
from dispatcher.store.models import Delivery
from tests.support.relay import RecordingRelay

runner = CliRunner()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a real process, as a user would run it."""
    return subprocess.run([sys.executable, "-c", "from dispatcher.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", [
    [], *([name] for name in COMMANDS), ["campaign", "check"], ["bounces", "report"],
])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_the_command_table_names_what_the_modules_register() -> None:
    registered: defaultdict[str, set[str]] = defaultdict(set)
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name == "common":
            continue
        registry = typer.Typer()
        importlib.import_module(f"{commands.__name__}.{info.name}").register(registry)
        for name in typer.main.get_group(registry).commands:
            registered[name].add(info.name)
    assert registered == {name: set(entry.modules) for name, entry in COMMANDS.items()}
    for name, entry in COMMANDS.items():
        # `dispatcher --help` shows the table's line: it must be the command's own.
        first_paragraph = inspect.cleandoc(load_command(name).help or "").split("\n\n")[0]
        assert entry.help == first_paragraph, name


IMPORTS_SCRIPT = """
import sys
from typer.testing import CliRunner
from dispatcher.cli import app
assert "test-send" in CliRunner().invoke(app, ["--help"]).output
assert "--json" in CliRunner().invoke(app, ["status", "--help"]).output
print(sorted(m for m in sys.modules if m.startswith("dispatcher.commands.")))
print(sorted({m.partition(".")[0] for m in sys.modules}
             & {"textual", "apscheduler", "starlette", "uvicorn", "jinja2"}))
"""


def test_a_command_imports_only_its_own_module() -> None:
    # A fresh interpreter: this one has imported every command already.
    listed = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT], capture_output=True,
                            text=True, timeout=60, check=True).stdout.splitlines()
    assert listed == ["['dispatcher.commands.common', 'dispatcher.commands.status']", "[]"]


def test_broken_campaign_is_reported_with_its_location(workspace: Path) -> None:
    (workspace / "campaigns" / "broken.yaml").write_text(
        "name: x\nsubject: [unclosed\n", encoding="utf-8")
    result = run("campaign", "check", "campaigns/broken.yaml", cwd=workspace)
    assert result.returncode == 1
    assert "campaigns/broken.yaml:" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_list_stops_the_send_before_anything_is_queued(workspace: Path) -> None:
    result = run("send", "campaigns/weekly.yaml", cwd=workspace)
    assert result.returncode == 1
    assert "unknown list 'weekly'" in result.stderr
    status = json.loads(run("status", "--json", cwd=workspace).stdout)
    assert status["campaigns"] == [], "a failed first send must not leave a 'running' campaign"


def test_bad_rows_go_to_the_rejects_file_and_good_rows_are_kept(
        workspace: Path, store_url: str) -> None:
    source = workspace / "lists" / "mixed.csv"
    source.write_text("email,first_name\nok@example.com,Ok\nnot-an-address,Bad\n"
                      ",Empty\nOK@Example.COM,Twice\nzoe@example.org,Zoë\n", encoding="utf-8")
    result = runner.invoke(app, ["import", "lists/mixed.csv", "--list", "m", "--json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rejects_file = workspace / "lists" / "mixed.csv.rejects.csv"
    rejects = list(csv.reader(rejects_file.read_text(encoding="utf-8").splitlines()))
    assert [r[0] for r in rejects[1:]] == ["3", "4"]
    out = workspace / "out.csv"
    result = runner.invoke(app, ["export", "--list", "m", "-o", str(out)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    exported = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [(r["email"], r["first_name"]) for r in exported] == [
        ("ok@example.com", "Ok"), ("zoe@example.org", "Zoë")]


@pytest.mark.relay(reject_rcpt={
    "gone@example.com": "550 5.1.1 <gone@example.com>: user unknown",
    "later@example.com": "451 4.3.0 try again later",
})
def test_rejected_recipients_are_recorded_and_the_exit_code_says_so(
        workspace: Path, relay: RecordingRelay, store_url: str) -> None:
    (workspace / "lists" / "weekly.csv").write_text(
        "email,first_name,city,plan\nok@example.com,Ok,Berlin,pro\n"
        "gone@example.com,Gone,Paris,free\nlater@example.com,Later,Rome,team\n", encoding="utf-8")
    runner.invoke(app, ["import", "lists/weekly.csv", "--list", "weekly"], catch_exceptions=False)
    result = runner.invoke(app, ["send", "campaigns/weekly.yaml", "--relay", relay.url],
                           catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert relay.recipients() == ["ok@example.com"]
    store = Store.open(store_url)
    with store.engine.connect() as conn:
        rows = dict(conn.execute(sa.select(Delivery.last_code, Delivery.state)).all())
    store.close()
    assert rows == {250: "sent", 550: "bounced", 451: "deferred"}
    # Why, without the recipient's address, so that equal replies count together.
    assert "1 bounced: 550 5.1.1 <…>: user unknown" in result.output
    assert "1 deferred: 451 4.3.0 try again later" in result.output


def test_send_counts_each_delivery_by_its_latest_reply() -> None:
    def outcome(delivery: int, state: str, code: int | None, reply: str) -> Outcome:
        claimed = Claimed(delivery, delivery, f"u{delivery}@example.com", "", {}, 0)
        return Outcome(claimed, state, code, None, reply)

    reasons = Reasons()
    for o in (outcome(1, "deferred", 451, "4.7.1 greylisted"),
              outcome(1, "sent", 250, "2.0.0 ok"),  # a retry in the same run got through
              outcome(2, "deferred", None, "timed out"),
              outcome(2, "deferred", 451, "4.7.1 greylisted"),
              outcome(3, "deferred", 451, "4.7.1  greylisted"),
              outcome(4, "bounced", 550, "5.1.1 <u4@example.com>: user unknown"),
              outcome(5, "bounced", 550, "5.1.1 <u5@example.com>: user unknown")):
        reasons.add(o)
    assert reasons.lines() == ["2 deferred: 451 4.7.1 greylisted",
                               "2 bounced: 550 5.1.1 <…>: user unknown"]


def test_preview_writes_eml_and_html(workspace: Path) -> None:
    runner.invoke(app, ["import", "lists/weekly.csv", "--list", "weekly"], catch_exceptions=False)
    result = runner.invoke(app, ["preview", "campaigns/weekly.yaml", "--out", "p", "--limit", "3"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(list((workspace / "p").glob("*.eml"))) == 3
    assert len(list((workspace / "p").glob("*.html"))) == 3
