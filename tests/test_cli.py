"""The CLI as a user meets it: help everywhere, honest exit codes, clear messages."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.store import Store
from dispatcher.store.models import Delivery
from tests.support.relay import RecordingRelay

runner = CliRunner()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a real process, as a user would run it."""
    return subprocess.run([sys.executable, "-c", "from dispatcher.cli import main; main()", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("command", [
    [], ["import"], ["export"], ["send"], ["status"], ["preview"], ["campaign"],
    ["campaign", "check"],
])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


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


def test_preview_writes_eml_and_html(workspace: Path) -> None:
    runner.invoke(app, ["import", "lists/weekly.csv", "--list", "weekly"], catch_exceptions=False)
    result = runner.invoke(app, ["preview", "campaigns/weekly.yaml", "--out", "p", "--limit", "3"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(list((workspace / "p").glob("*.eml"))) == 3
    assert len(list((workspace / "p").glob("*.html"))) == 3
