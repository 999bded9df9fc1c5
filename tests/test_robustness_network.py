"""Ports that are taken, relays nobody answers on, a store that goes away under the dashboard."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import DataTable

from dispatcher.config import Workspace
from dispatcher.dashboard import DashboardApp, StoreSource
from dispatcher.dashboard.screens.campaign_detail import CampaignDetailScreen
from dispatcher.dashboard.screens.confirm import ConfirmScreen
from dispatcher.dashboard.widgets.campaign_table import CampaignTable
from dispatcher.errors import ConfigError
from dispatcher.scheduler.services import SideServices
from dispatcher.store import Store
from dispatcher.store.database import create_engine
from tests.support.badrelay import down_port
from tests.test_dashboard_support import NOW, Prepared, add_campaign, add_event, prepare
from tests.test_robustness_config import failed, run


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port somebody else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_web_on_a_taken_port_says_so_and_exits_1(tmp_path: Path, taken: int) -> None:
    """It printed "serving ... on" first, then uvicorn's log line, and exited 3 ("undelivered")."""
    result = run("web", "--port", str(taken), cwd=tmp_path)
    stderr = failed(result)
    assert f"error: cannot listen on 127.0.0.1:{taken}: Address already in use" in stderr
    assert "serving" not in result.stdout
    stderr = failed(run("bounces", "receive", "--port", str(taken), cwd=tmp_path))
    assert f"error: cannot listen on 127.0.0.1:{taken}: Address already in use" in stderr
    result = run("web", "--port", "99999", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_web_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = down_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from dispatcher.cli import main; main()", "web", "--port",
         str(port)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        status = None
        while status is None and time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/unsubscribe/bogus", timeout=5)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                time.sleep(0.1)
        assert status == 400
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"serving unsubscribe and tracking on http://127.0.0.1:{port}" in out
    assert "Traceback" not in err and "interrupted" not in err


def test_serve_side_services_stop_what_started_when_a_port_is_taken(
        workspace: Path, store: Store, taken: int) -> None:
    web = down_port()
    services = SideServices(store, Workspace.load(workspace), web=f"127.0.0.1:{web}",
                            inbound=f"127.0.0.1:{taken}")
    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{taken}: Address "
                                          "already in use"):
        services.start()
    assert free(web)  # the web endpoint started first was stopped again


def test_test_send_to_a_relay_nobody_answers_on(workspace: Path) -> None:
    assert run("import", "lists/weekly.csv", "--list", "weekly", cwd=workspace).returncode == 0
    port = down_port()
    stderr = failed(run("test-send", "campaigns/weekly.yaml", "--to", "seed@example.com",
                        "--relay", f"smtp://127.0.0.1:{port}?timeout=5", cwd=workspace))
    assert f"error: relay smtp://127.0.0.1:{port}: cannot connect: " in stderr


@pytest.mark.asyncio
async def test_opening_a_campaign_when_the_store_went_away_keeps_the_dashboard(
        store: Store) -> None:
    prepared: Prepared = prepare(store)
    app = DashboardApp(StoreSource(store, clock=lambda: NOW), location="test", interval=0)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.reload()
        table = app.screen.query_one(CampaignTable)
        table.move_cursor(row=table.get_row_index(str(prepared.spring)))
        # From now on every read fails the way a stopped database server fails.
        gone = Store(create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{down_port()}/x"))
        app.source = StoreSource(gone, clock=lambda: NOW)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, CampaignDetailScreen)
        assert any("cannot read the campaign" in n.message for n in app._notifications)
        await app.reload()
        assert "store unreachable" in app.sub_title
        await pilot.press("escape")
        await pilot.pause()
        assert app.is_running
        gone.close()


@pytest.mark.asyncio
async def test_names_and_replies_that_look_like_markup_are_shown_as_they_are(
        store: Store) -> None:
    prepared: Prepared = prepare(store)
    odd = add_campaign(store, "sale [/b] [red]now")
    add_event(store, "deferred", odd, at=NOW, detail="452 [mailbox] full [/]")
    app = DashboardApp(StoreSource(store, clock=lambda: NOW), location="test", interval=0)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.reload()
        await pilot.pause()
        assert "store unreachable" not in app.sub_title
        table = app.screen.query_one(CampaignTable)
        assert str(table.get_row(str(odd))[0]) == "sale [/b] [red]now"
        events = app.screen.query_one("#events", DataTable)
        assert any("452 [mailbox] full [/]" in str(cell) for row in range(events.row_count)
                   for cell in events.get_row_at(row))
        table.move_cursor(row=table.get_row_index(str(odd)))
        await pilot.press("c")  # cancel asks first, naming the campaign
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert app.is_running and prepared.spring
