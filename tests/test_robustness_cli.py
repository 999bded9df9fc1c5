"""The last defence in ``cli.main``: Ctrl-C, the file system and bugs, without tracebacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from dispatcher.store import Store
from tests.test_robustness_config import failed, run

ROWS = 40_000


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_ctrl_c_in_an_import_says_what_is_kept_and_a_rerun_completes(
        workspace: Path, store_url: str) -> None:
    source = workspace / "big.csv"
    with source.open("w", encoding="utf-8") as out:
        out.write("email,first_name\n")
        for i in range(ROWS):
            out.write(f"user{i}@example.com,User {i}\n")
    # As from a terminal: SIGINT is Ctrl-C even when the test runner was started in the
    # background (where the shell makes its children ignore it).
    process = subprocess.Popen(
        [sys.executable, "-c", "from dispatcher.cli import main; main()",
         "import", "big.csv", "--list", "big"],
        cwd=workspace, env={**os.environ, "DISPATCHER_DATABASE_URL": store_url},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    store = Store.open(store_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if count(store, "subscriber") >= 5_000:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the import finished before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130
        assert "Traceback" not in err
        assert "interrupted: what was done so far is kept; run the same command again" in err
        stopped_at = count(store, "subscriber")
        assert count(store, "membership") == stopped_at  # whole batches only

        result = run("import", "big.csv", "--list", "big", "--json", cwd=workspace)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["added"], summary["unchanged"]) == (ROWS - stopped_at, stopped_at)
        assert count(store, "subscriber") == count(store, "membership") == ROWS
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
        store.close()


def test_a_file_where_a_folder_belongs_is_one_line_naming_it(workspace: Path) -> None:
    assert run("import", "lists/weekly.csv", "--list", "weekly", cwd=workspace).returncode == 0
    (workspace / "outbox").write_text("not a folder\n", encoding="utf-8")
    result = run("send", "campaigns/weekly.yaml", cwd=workspace)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "outbox" in result.stderr


def test_an_unexpected_exception_is_reported_without_a_traceback(workspace: Path) -> None:
    assert run("import", "lists/weekly.csv", "--list", "weekly", cwd=workspace).returncode == 0
    result = run("send", "campaigns/weekly.yaml", "--relay", "smtps://[::1", cwd=workspace)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "[::1" in result.stderr or "IPv6" in result.stderr
    env = {**os.environ, "DISPATCHER_DEBUG": "1"}
    shown = subprocess.run(
        [sys.executable, "-c", "from dispatcher.cli import main; main()", "send",
         "campaigns/weekly.yaml", "--relay", "smtps://[::1"], cwd=workspace, env=env,
        capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 1
    if "internal error" in result.stderr:  # still a bug in smtp/relay.py: the trace is there
        assert "Traceback" in shown.stderr


def test_a_full_disk_on_stdout_is_one_line(workspace: Path) -> None:
    assert run("import", "lists/weekly.csv", "--list", "weekly", cwd=workspace).returncode == 0
    with open("/dev/full", "w", encoding="utf-8") as full:
        result = subprocess.run(
            [sys.executable, "-c", "from dispatcher.cli import main; main()", "export", "-o",
             "-"], cwd=workspace, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
            check=False)
    assert failed(result).strip() == "error: No space left on device"


def test_names_that_look_like_markup_are_printed_as_they_are(workspace: Path) -> None:
    """A list called "[/]" stopped `dispatcher lists` for good; a campaign called "sale [/b]"
    stopped `send` after it had sent, before its summary, and every `status` after it."""
    assert run("import", "lists/weekly.csv", "--list", "[/]", cwd=workspace).returncode == 0
    text = (workspace / "campaigns" / "weekly.yaml").read_text(encoding="utf-8")
    (workspace / "campaigns" / "sale.yaml").write_text(
        text.replace("name: weekly-2026-48", "name: 'sale [/b] [red]now'")
        .replace("lists: [weekly]", "lists: ['[/]']"), encoding="utf-8")
    for args in (["lists"], ["send", "campaigns/sale.yaml"], ["status"],
                 ["bounces", "report", "--campaign", "sale [/b] [red]now"],
                 ["lists", "create", "[bold]x[/]"]):
        result = run(*args, cwd=workspace)
        assert result.returncode == 0, (args, result.stdout + result.stderr)
    result = run("lists", "--json", cwd=workspace)
    assert {c["list"] for c in json.loads(result.stdout)} == {"[/]", "[bold]x[/]"}
    assert "sale [/b] [red]now" in run("status", cwd=workspace).stdout
