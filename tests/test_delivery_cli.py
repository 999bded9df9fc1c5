"""``dispatcher send`` to a relay that is down, ``dispatcher campaign
pause|resume|cancel|retry-failed`` and ``dispatcher worker``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.errors import DispatcherError
from dispatcher.store import Store
from dispatcher.store.models import Delivery
from tests.support.badrelay import down_port

runner = CliRunner()
NAME = "weekly-2026-48"
_delivery = Delivery.__table__  # type: ignore[attr-defined]


def invoke(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=code != 0)
    if isinstance(result.exception, DispatcherError):
        # What cli.main prints for a DispatcherError before exiting 1.
        assert code == 1, result.exception
        return str(result.exception)
    assert result.exit_code == code, result.output
    return result.output


def states() -> Counter[str]:
    store = Store.open(os.environ["DISPATCHER_DATABASE_URL"])
    try:
        with store.engine.connect() as conn:
            return Counter(conn.execute(sa.select(_delivery.c.state)).scalars())
    finally:
        store.close()


def test_send_to_a_closed_port_says_why_nothing_was_delivered(imported: Path) -> None:
    port = down_port()
    output = invoke("send", "campaigns/weekly.yaml", "--relay", f"smtp://127.0.0.1:{port}",
                    code=3)
    counts = states()
    assert set(counts) == {"deferred"}
    deferred = counts["deferred"]
    # Joined, so the assertion does not depend on where the terminal width broke a line.
    text = " ".join(output.split())
    assert (f"{deferred} deferred: no relay could take it: 127.0.0.1:{port}: cannot connect"
            in text), output


def test_control_commands_and_worker(workspace: Path) -> None:
    assert "no campaign named" in invoke("campaign", "pause", NAME, code=1)
    invoke("import", "lists/weekly.csv", "--list", "weekly")
    # The relay is down: every delivery is deferred, nothing lost.
    invoke("send", "campaigns/weekly.yaml", "--relay", f"smtp://127.0.0.1:{down_port()}",
           code=3)
    deferred = states()
    assert set(deferred) == {"deferred"}
    store = Store.open(os.environ["DISPATCHER_DATABASE_URL"])
    with store.engine.begin() as conn:  # as if the retry time had come
        conn.execute(_delivery.update().values(next_attempt_at=None))
    store.close()
    assert "is paused" in invoke("campaign", "pause", NAME)
    invoke("worker", "--once")
    assert states() == deferred and not (workspace / "outbox").exists()
    assert "is running" in invoke("campaign", "resume", NAME)
    # The campaign names the capture relay: the worker files one .eml per recipient.
    invoke("worker", "--once")
    assert states() == Counter(sent=deferred["deferred"])
    assert len(list((workspace / "outbox").glob("*.eml"))) == deferred["deferred"]
    assert "0 failed deliveries queued again" in invoke("campaign", "retry-failed", NAME)
    assert "cannot cancel" in invoke("campaign", "cancel", NAME, code=1)  # it finished
