"""kill -9 in the middle of a large import, then the same import again: every row, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from dispatcher.lists.importer import ImportOptions, import_file
from dispatcher.store import Store

ROWS = 40_000


def count(store: Store, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_killed_import_rerun_completes_without_duplicates(workspace: Path, store_url: str) -> None:
    source = workspace / "big.csv"
    with source.open("w", encoding="utf-8") as out:
        out.write("email,first_name,score\n")
        for i in range(ROWS):
            out.write(f"user{i}@example.com,User {i},{i % 100}\n")
    env = {**os.environ, "DISPATCHER_DATABASE_URL": store_url}
    process = subprocess.Popen(
        [sys.executable, "-c", "from dispatcher.cli import main; main()",
         "import", "big.csv", "--list", "big", "--json"],
        cwd=workspace, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = Store.open(store_url)
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                seen = count(store, "subscriber")
            except sa.exc.OperationalError:
                seen = 0  # the table is being created by the importer's migration
            if seen >= 5_000:
                break
            time.sleep(0.01)
        assert process.poll() is None, "the import finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        killed_at = count(store, "subscriber")
        assert 5_000 <= killed_at < ROWS
        # Whole batches only: every stored subscriber is on the list, nobody half-written.
        assert count(store, "membership") == killed_at

        report = import_file(store, source, ImportOptions(list_name="big"))
        assert (report.read, report.rejected_total) == (ROWS, 0)
        assert report.added == ROWS - killed_at
        assert report.unchanged == killed_at
        assert count(store, "subscriber") == ROWS
        assert count(store, "membership") == ROWS
        with store.engine.connect() as conn:
            distinct = conn.execute(sa.text(
                "SELECT count(DISTINCT email) FROM subscriber")).scalar_one()
        assert distinct == ROWS
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
        store.close()
