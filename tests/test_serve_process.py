"""`dispatcher serve` as a real process: signals, restarts, two daemons on one PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.store import Store
from dispatcher.store.database import create_engine
from dispatcher.store.tables import campaign_t, delivery_t, event_t
from tests.conftest import PG_URL, REPO
from tests.support.relay import RecordingRelay
from tests.test_schedule_daemon import start_slow_relay

runner = CliRunner()
EXAMPLE = "weekly-2026-48"  # the example campaign's name


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class Daemon:
    """One `dispatcher serve` subprocess, its JSON log lines collected as they come."""

    def __init__(self, root: Path, env: dict[str, str], *extra: str) -> None:
        code = "from dispatcher.cli import main; main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--log-json", "--tick", "0.2", *extra],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                self.lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue

    def events(self) -> list[str]:
        return [str(line.get("event")) for line in list(self.lines)]

    def wait_for(self, what: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                pytest.fail("serve exited early:\n" + "".join(self.raw))
            if time.monotonic() > deadline:
                pytest.fail("timed out; serve said:\n" + "".join(self.raw))
            time.sleep(0.05)

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail("serve did not stop on SIGTERM:\n" + "".join(self.raw))
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code


@pytest.fixture
def env(workspace: Path, store_url: str) -> dict[str, str]:
    cli("import", "lists/weekly.csv", "--list", "weekly")
    return {**os.environ, "DISPATCHER_DATABASE_URL": store_url, "PYTHONPATH": str(REPO)}


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def audience(root: Path) -> int:
    with (root / "lists" / "weekly.csv").open(encoding="utf-8") as fh:
        return sum(1 for _ in fh) - 1


def delivery_states(url: str) -> dict[str, int]:
    store = Store.open(url)
    try:
        with store.engine.connect() as conn:
            return dict(conn.execute(sa.select(delivery_t.c.state, sa.func.count())
                                     .group_by(delivery_t.c.state)).all())
    finally:
        store.close()


# Each subprocess test runs on one store kind (the daemon's logic runs on both in
# test_schedule_daemon.py); starting `dispatcher serve` costs seconds on a busy machine.
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sigterm_before_the_time_then_restart_sends_once(
        workspace: Path, env: dict[str, str], store_url: str, relay: RecordingRelay) -> None:
    total = audience(workspace)
    first = Daemon(workspace, env)
    first.wait_for(lambda: "serving" in first.events())
    cli("schedule", "campaigns/weekly.yaml", "--at", in_seconds(4), "--relay", relay.url)
    assert "scheduled" in cli("schedules")
    assert first.terminate() == 0
    assert relay.received == [] and "stopped" in first.events()

    # Back within the hour's grace: sent, once; the web endpoint and the bounce
    # receiver run beside it.
    second = Daemon(workspace, env, "--web", "127.0.0.1:0", "--inbound", "127.0.0.1:0")
    second.wait_for(lambda: "finished" in second.events())
    (web,) = [line for line in second.lines if line.get("event") == "web"]
    with urllib.request.urlopen(f"{web['url']}/healthz", timeout=5) as response:
        assert response.status == 200
    (inbound,) = [line for line in second.lines if line.get("event") == "inbound"]
    with smtplib.SMTP("127.0.0.1", int(inbound["port"]), timeout=5) as smtp:
        assert smtp.noop()[0] == 250
    time.sleep(0.5)
    assert second.terminate() == 0
    counts = Counter(relay.recipients())
    assert len(counts) == total and set(counts.values()) == {1}
    assert delivery_states(store_url) == {"sent": total}


@pytest.fixture
def slow_relay() -> Iterator[RecordingRelay]:
    server = start_slow_relay()
    yield server
    server.stop()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_sigterm_during_a_send_leaves_nothing_claimed_and_a_restart_finishes(
        workspace: Path, env: dict[str, str], store_url: str,
        slow_relay: RecordingRelay) -> None:
    total = audience(workspace)
    cli("schedule", "campaigns/weekly.yaml", "--at", in_seconds(0), "--relay", slow_relay.url)
    first = Daemon(workspace, env)
    first.wait_for(lambda: len(slow_relay.received) >= 20)
    assert first.terminate() == 0
    stopped_at = len(slow_relay.received)
    assert stopped_at < total, "the send finished before SIGTERM; slow the relay down"
    states = delivery_states(store_url)
    assert "claimed" not in states
    # What was handed to the relay is recorded as sent; nothing more, nothing less.
    assert states.get("sent", 0) == len(set(slow_relay.recipients())) == stopped_at
    assert states.get("queued", 0) == total - stopped_at

    second = Daemon(workspace, env)
    second.wait_for(lambda: "finished" in second.events())
    assert second.terminate() == 0
    counts = Counter(slow_relay.recipients())
    assert len(counts) == total and set(counts.values()) == {1}
    assert delivery_states(store_url) == {"sent": total}


@pytest.fixture
def pg_workspace(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A workspace on a fresh PostgreSQL schema (this test is about PostgreSQL only)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("campaigns", "lists", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "dispatcher.toml", root / "dispatcher.toml")
    yield root, url
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_two_daemons_on_postgresql_run_a_due_campaign_once(
        pg_workspace: tuple[Path, str], relay: RecordingRelay,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root, url = pg_workspace
    monkeypatch.chdir(root)
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", url)
    cli("import", "lists/weekly.csv", "--list", "weekly")
    total = audience(root)
    env = {**os.environ, "DISPATCHER_DATABASE_URL": url, "PYTHONPATH": str(REPO)}
    daemons = [Daemon(root, env), Daemon(root, env)]
    for d in daemons:
        d.wait_for(lambda d=d: "serving" in d.events())  # type: ignore[misc]
    cli("schedule", "campaigns/weekly.yaml", "--at", in_seconds(1), "--relay", relay.url)
    daemons[0].wait_for(lambda: len(relay.received) >= total)
    daemons[0].wait_for(lambda: any("finished" in d.events() for d in daemons))
    time.sleep(1.0)
    assert [d.terminate() for d in daemons] == [0, 0]
    counts = Counter(relay.recipients())
    assert len(counts) == total and set(counts.values()) == {1}
    starters = [d for d in daemons if "started" in d.events()]
    assert len(starters) == 1
    store = Store.open(url)
    with store.engine.connect() as conn:
        started = conn.execute(sa.select(sa.func.count()).select_from(event_t)
                               .where(event_t.c.kind == "started")).scalar_one()
        status = conn.execute(sa.select(campaign_t.c.status)
                              .where(campaign_t.c.name == EXAMPLE)).scalar_one()
    store.close()
    assert (started, status) == (1, "finished")
