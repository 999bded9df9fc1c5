"""The dashboard driven by Pilot on a real store (SQLite and PostgreSQL) with prepared campaigns."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from textual.widgets import DataTable, Sparkline

from dispatcher.dashboard import DashboardApp, StoreSource
from dispatcher.dashboard.screens.campaign_detail import CampaignDetailScreen
from dispatcher.dashboard.screens.confirm import ConfirmScreen
from dispatcher.dashboard.screens.help import HelpScreen
from dispatcher.dashboard.widgets.campaign_table import CampaignTable
from dispatcher.dashboard.widgets.throughput import ThroughputChart
from dispatcher.store import Store
from tests.test_dashboard_support import NOW, SENT, Prepared, prepare, send

pytestmark = pytest.mark.asyncio


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _app(store: Store, clock: Clock | None = None) -> DashboardApp:
    return DashboardApp(StoreSource(store, clock=clock or Clock(NOW)), location="test",
                        interval=0)


def _status(store: Store, campaign_id: int) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT status FROM campaign WHERE id = :i"),
                                {"i": campaign_id}).scalar_one())


def _cells(table: DataTable[object], key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


async def _select(app: DashboardApp, pilot: object, campaign_id: int) -> None:
    table = app.screen.query_one(CampaignTable)
    table.move_cursor(row=table.get_row_index(str(campaign_id)))


@pytest.fixture
def prepared(store: Store) -> Prepared:
    return prepare(store)


async def test_campaign_table_shows_the_stored_numbers(store: Store, prepared: Prepared) -> None:
    app = _app(store)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.reload()
        await pilot.pause()
        table = app.screen.query_one(CampaignTable)
        assert table.row_count == 3
        spring = dict(zip([c.key.value for c in table.columns.values()],
                          _cells(table, str(prepared.spring)), strict=True))
        assert spring["name"] == "spring-sale"
        assert spring["status"] == "running"
        assert spring["total"] == "60"
        assert (spring["sent"], spring["deferred"], spring["bounced"], spring["failed"],
                spring["unsubscribed"]) == ("30", "1", "5", "0", "1")
        assert spring["progress"].endswith(" 58%")
        assert spring["rate"] == "0.7/s"
        assert spring["eta"] == "0m35s"
        autumn = _cells(table, str(prepared.autumn))
        assert autumn[1] == "finished" and "1" in autumn  # the complaint
        relays = app.screen.query_one("#relays", DataTable)
        assert _cells(relays, "smtp://relay-a:25")[1] == "degraded"
        domains = app.screen.query_one("#domains", DataTable)
        assert next(iter(domains.rows)).value == "gmail.com"
        events = app.screen.query_one("#events", DataTable)
        assert events.row_count == 2 + 5 + 3 + 2 + 1 + 1  # feedback, deferrals, bounces


async def test_pause_resume_and_confirmed_cancel_change_the_store(
        store: Store, prepared: Prepared) -> None:
    app = _app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.reload()
        await _select(app, pilot, prepared.spring)
        await pilot.press("p")
        await pilot.pause()
        assert _status(store, prepared.spring) == "paused"
        table = app.screen.query_one(CampaignTable)
        assert _cells(table, str(prepared.spring))[1] == "paused"
        assert table.campaign_id == prepared.spring  # the cursor stayed on the row
        await pilot.press("r")
        await pilot.pause()
        assert _status(store, prepared.spring) == "running"
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert _status(store, prepared.spring) == "running"
        await pilot.press("c")
        await pilot.pause()
        await pilot.click("#yes")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert _status(store, prepared.spring) == "cancelled"
        await pilot.press("r")  # a cancelled campaign stays cancelled
        await pilot.pause()
        assert _status(store, prepared.spring) == "cancelled"


async def test_schedule_unschedule_and_retry_failed(store: Store, prepared: Prepared) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE campaign SET status = 'draft', definition = :d "
                             "WHERE id = :i"),
                     {"i": prepared.draft,
                      "d": '{"schedule": {"at": "2026-03-21T08:00:00+00:00"}}'})
    app = _app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.reload()
        await _select(app, pilot, prepared.draft)
        await pilot.press("s")
        await pilot.pause()
        assert _status(store, prepared.draft) == "scheduled"
        await pilot.press("u")
        await pilot.pause()
        assert _status(store, prepared.draft) == "draft"

        cid = prepared.autumn
        send_id = prepared.spring
        send(store, send_id, [("failed", None, "template error: name undefined")] * 2,
             relay="smtp://relay-a:25", at=NOW)
        await app.reload()
        await _select(app, pilot, send_id)
        assert _cells(app.screen.query_one(CampaignTable), str(send_id))[6] == "2"
        await pilot.press("f")
        await pilot.pause()
        with store.engine.connect() as conn:
            failed = conn.execute(sa.text(
                "SELECT count(*) FROM delivery WHERE campaign_id = :i AND state = 'failed'"),
                {"i": send_id}).scalar_one()
        assert failed == 0
        row = _cells(app.screen.query_one(CampaignTable), str(send_id))
        assert row[6] == "0"  # the rollup moved them back to queued
        await _select(app, pilot, cid)
        await pilot.press("f")  # nothing failed there: a warning, nothing changes
        await pilot.pause()
        assert _status(store, cid) == "finished"


async def test_detail_screen_opens_with_its_numbers_and_goes_back(
        store: Store, prepared: Prepared) -> None:
    app = _app(store)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.reload()
        await _select(app, pilot, prepared.spring)
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CampaignDetailScreen)
        states = screen.query_one("#states", DataTable)
        assert [str(c) for c in states.get_row_at(1)][:2] == ["sent", "30"]
        variants = screen.query_one("#variants", DataTable)
        assert [str(variants.get_row_at(i)[0]) for i in range(variants.row_count)] == ["A", "B"]
        reasons = screen.query_one("#reasons", DataTable)
        assert [str(c) for c in reasons.get_row_at(0)] == ["gmail.com", "5.1.1", "3"]
        errors = screen.query_one("#errors", DataTable)
        assert "Connection refused" in str(errors.get_row_at(0)[3])
        await pilot.press("p")
        await pilot.pause()
        assert _status(store, prepared.spring) == "paused"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CampaignDetailScreen)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("t")
        assert app.theme == "textual-light"


async def test_mouse_click_on_a_row_opens_it(store: Store, prepared: Prepared) -> None:
    app = _app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.reload()
        await pilot.pause()
        # Row 2 of the table (autumn-news): a first click selects it, a second opens it.
        await pilot.click(CampaignTable, offset=(4, 3))
        await pilot.click(CampaignTable, offset=(4, 3))
        await pilot.pause()
        assert isinstance(app.screen, CampaignDetailScreen)
        assert app.screen.campaign_id == prepared.autumn


async def test_chart_moves_when_new_events_arrive(store: Store, prepared: Prepared) -> None:
    clock = Clock(NOW)
    app = _app(store, clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await app.reload()
        chart = app.screen.query_one(ThroughputChart)
        before = chart.series("smtp://relay-a:25")
        assert before[-1] == 0.0 and max(before) == 2.8
        send(store, prepared.spring, [SENT] * 9, relay="smtp://relay-a:25", at=NOW)
        clock.at = NOW + timedelta(seconds=10)
        await app.reload()
        await pilot.pause()
        after = chart.series("smtp://relay-a:25")
        assert after[-1] == 0.9
        assert after[:-1] == before[1:]  # the window slid by one bucket
        assert chart.query(Sparkline).first().data == after
