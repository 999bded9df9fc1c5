"""The daemon with a fake clock, a real store (both kinds) and a real loopback relay.

Time is moved, never slept: each step sets the clock, runs one tick and waits
for the sending passes it started; what the relay received is then checked
against the fake clock (the renderer's Date header comes from the same clock).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, Envelope, Session

from dispatcher.campaigns.loader import load_campaign
from dispatcher.config import Workspace
from dispatcher.core.campaign import Campaign as CampaignDefinition
from dispatcher.core.schedule import SchedulerConfig, WarmupConfig
from dispatcher.delivery import enqueue, prepare_campaign
from dispatcher.scheduler import records
from dispatcher.scheduler.daemon import Daemon
from dispatcher.store import Store
from dispatcher.store.tables import (
    campaign_t,
    delivery_t,
    event_t,
    mailing_list_t,
    membership_t,
    subscriber_t,
)
from tests.support.relay import RecordingHandler, RecordingRelay
from tests.test_schedule_cron import finishes


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(workspace: Path, store_url: str) -> Iterator[Store]:
    store = Store.open(store_url)
    yield store
    store.close()


def add_subscribers(store: Store, people: list[tuple[str, str | None]]) -> None:
    """Subscribers of list ``weekly``: (email, timezone attribute or None)."""
    with store.engine.begin() as conn:
        list_id = conn.execute(sa.insert(mailing_list_t).values(name="weekly", description="")
                               .returning(mailing_list_t.c.id)).scalar_one()
        for email, tz in people:
            attrs: dict[str, Any] = {"first_name": email.split("@")[0].title(), "city": "Graz",
                                     "plan": "free", "signup_date": "2024-01-01"}
            if tz:
                attrs["timezone"] = tz
            sid = conn.execute(sa.insert(subscriber_t).values(
                email=email, name="", attributes=attrs, status="active")
                .returning(subscriber_t.c.id)).scalar_one()
            conn.execute(sa.insert(membership_t).values(list_id=list_id, subscriber_id=sid,
                                                      status="subscribed"))


def definition(root: Path, name: str, **schedule: Any) -> dict[str, Any]:
    data = load_campaign(root / "campaigns" / "weekly.yaml").model_dump(mode="json",
                                                                         by_alias=True)
    data["name"] = name
    data["schedule"] = schedule or None
    return data


def schedule_at(store: Store, root: Path, name: str, at: datetime, relay: RecordingRelay,
                **schedule: Any) -> None:
    records.save_schedule(store, records.NewSchedule(
        name, "at", definition(root, name, **schedule), "campaigns/weekly.yaml", relay.url,
        at=at), now=at - timedelta(days=1))


def step(daemon: Daemon, clock: FakeClock, when: datetime) -> None:
    clock.now = when

    async def go() -> None:
        await daemon.tick()
        await daemon.wait_passes()

    asyncio.run(go())


def shut(daemon: Daemon) -> None:
    asyncio.run(daemon.stop())


def status(store: Store, name: str) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(sa.select(campaign_t.c.status).where(campaign_t.c.name == name))
                   .scalar_one())


def make(store: Store, root: Path, clock: FakeClock, owner: str | None = None,
         **config: Any) -> Daemon:
    return Daemon(store, Workspace.load(root), SchedulerConfig(**config), clock=clock,
                  owner=owner)


def test_at_starts_at_its_time_and_not_before(workspace: Path, db: Store,
                                              relay: RecordingRelay) -> None:
    add_subscribers(db, [(f"p{i}@example.org", None) for i in range(5)])
    due = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    schedule_at(db, workspace, "tuesday", due, relay)
    clock = FakeClock(due - timedelta(hours=1))
    daemon = make(db, workspace, clock)
    step(daemon, clock, due - timedelta(hours=1))
    step(daemon, clock, due - timedelta(seconds=1))
    assert relay.received == [] and status(db, "tuesday") == "scheduled"
    step(daemon, clock, due)
    assert sorted(relay.recipients()) == [f"p{i}@example.org" for i in range(5)]
    assert status(db, "tuesday") == "finished"
    for message in relay.received:
        assert parsedate_to_datetime(message.message()["Date"]) == due
    step(daemon, clock, due + timedelta(minutes=5))
    assert len(relay.received) == 5
    shut(daemon)


def test_a_start_missed_by_more_than_the_grace_is_marked_missed_not_sent(
        workspace: Path, db: Store, relay: RecordingRelay) -> None:
    add_subscribers(db, [("a@example.org", None)])
    due = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    schedule_at(db, workspace, "late", due, relay)
    schedule_at(db, workspace, "slightly-late", due, relay)
    with db.engine.begin() as conn:
        conn.execute(sa.update(campaign_t).where(campaign_t.c.name == "slightly-late")
                     .values(scheduled_at=due + timedelta(hours=1, minutes=30)))
    clock = FakeClock(due)
    daemon = make(db, workspace, clock)
    # The daemon was down from before 8:00 until 10:05: one is 2 h late, the other 35 min.
    step(daemon, clock, due + timedelta(hours=2, minutes=5))
    assert status(db, "late") == "missed"
    assert status(db, "slightly-late") == "finished"
    assert relay.recipients() == ["a@example.org"]
    with db.engine.connect() as conn:
        kinds = conn.execute(sa.select(event_t.c.kind)
                             .join(campaign_t, campaign_t.c.id == event_t.c.campaign_id)
                             .where(campaign_t.c.name == "late")).scalars().all()
    assert kinds == ["missed"]
    rows = {r["name"]: r for r in records.schedules(db)}
    assert rows["late"]["status"] == "missed"
    shut(daemon)


def test_local_time_reaches_tokyo_berlin_new_york_each_at_their_nine(
        workspace: Path, db: Store, relay: RecordingRelay) -> None:
    people = [("ken@example.jp", "Asia/Tokyo"), ("anna@example.de", "Europe/Berlin"),
              ("joe@example.com", "America/New_York"), ("nobody@example.net", None),
              ("typo@example.net", "Europe/Berln")]
    add_subscribers(db, people)
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # Tuesday 09:00 in Tokyo
    schedule_at(db, workspace, "morning", start, relay, local_time="09:00",
                timezone="Europe/Lisbon")
    clock = FakeClock(start)
    daemon = make(db, workspace, clock)
    seen: dict[str, datetime] = {}
    when = start
    while when <= start + timedelta(hours=16):
        step(daemon, clock, when)
        for message in relay.received:
            (rcpt,) = message.rcpt_tos
            seen.setdefault(rcpt, when)
            assert parsedate_to_datetime(message.message()["Date"]) == seen[rcpt]
        when += timedelta(minutes=30)
    expected = {"ken@example.jp": "Asia/Tokyo", "anna@example.de": "Europe/Berlin",
                "joe@example.com": "America/New_York",
                # no zone, or an unknown one: the campaign's default zone
                "nobody@example.net": "Europe/Lisbon", "typo@example.net": "Europe/Lisbon"}
    assert set(seen) == set(expected)
    for rcpt, tz in expected.items():
        local = seen[rcpt].astimezone(ZoneInfo(tz))
        assert (local.hour, local.minute, local.date()) == (9, 0, date(2026, 12, 1)), rcpt
    assert len(relay.received) == len(people)
    assert status(db, "morning") == "finished"
    shut(daemon)


def test_a_sender_zone_window_pauses_and_resumes(workspace: Path, db: Store,
                                                 relay: RecordingRelay) -> None:
    add_subscribers(db, [(f"w{i}@example.org", None) for i in range(4)])
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    schedule_at(db, workspace, "weekdays", saturday, relay,
                window={"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "08:00-18:00",
                        "zone": "Europe/Berlin"})
    clock = FakeClock(saturday)
    daemon = make(db, workspace, clock)
    step(daemon, clock, saturday)
    assert status(db, "weekdays") == "running" and relay.received == []
    monday_open = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    step(daemon, clock, monday_open - timedelta(minutes=1))
    assert relay.received == []
    step(daemon, clock, monday_open)
    assert len(relay.received) == 4 and status(db, "weekdays") == "finished"
    shut(daemon)


class SlowHandler(RecordingHandler):
    """Accepts each message after a pause, so a pass is still sending when a window closes."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


def start_slow_relay() -> RecordingRelay:
    server = RecordingRelay()
    server.handler = server.controller.handler = SlowHandler()
    return server.start()


@pytest.fixture
def slow_relay() -> Iterator[RecordingRelay]:
    server = start_slow_relay()
    yield server
    server.stop()


def test_a_window_closing_during_a_pass_stops_it_until_the_next_opening(
        workspace: Path, db: Store, slow_relay: RecordingRelay) -> None:
    people = [f"c{i:03d}@example.org" for i in range(120)]
    add_subscribers(db, [(p, None) for p in people])
    closing = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # a Friday
    start = closing - timedelta(seconds=0.3)
    schedule_at(db, workspace, "closing", start, slow_relay,
                window={"days": "mon-fri", "hours": "08:00-18:00", "zone": "UTC"})
    clock = FakeClock(start)
    daemon = Daemon(db, Workspace.load(workspace), SchedulerConfig(), clock=clock, batch=4)
    step(daemon, clock, start)
    before_close = len(slow_relay.received)
    assert before_close < len(people)  # stopped at 18:00, not when the queue ran dry
    step(daemon, clock, closing + timedelta(minutes=30))
    assert len(slow_relay.received) == before_close
    step(daemon, clock, datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    assert sorted(slow_relay.recipients()) == people
    assert status(db, "closing") == "finished"
    shut(daemon)


def test_a_recipient_zone_window_holds_each_recipient_until_their_hours(
        workspace: Path, db: Store, relay: RecordingRelay) -> None:
    add_subscribers(db, [("ken@example.jp", "Asia/Tokyo"), ("joe@example.com",
                                                            "America/New_York")])
    start = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # Tokyo 10:00 Tue, New York 20:00 Mon
    schedule_at(db, workspace, "office", start, relay,
                window={"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-17:00",
                        "zone": "recipient"})
    clock = FakeClock(start)
    daemon = make(db, workspace, clock)
    step(daemon, clock, start)
    assert relay.recipients() == ["ken@example.jp"]
    ny_nine = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    step(daemon, clock, ny_nine - timedelta(minutes=1))
    assert relay.recipients() == ["ken@example.jp"]
    step(daemon, clock, ny_nine)
    assert sorted(relay.recipients()) == ["joe@example.com", "ken@example.jp"]
    shut(daemon)


def test_warmup_cap_holds_per_day_across_a_restart(workspace: Path, db: Store,
                                                   relay: RecordingRelay) -> None:
    add_subscribers(db, [(f"r{i:02d}@example.org", None) for i in range(10)])
    day0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    schedule_at(db, workspace, "ramp", day0, relay)
    warmup = WarmupConfig(first_day=3, factor=2, ceiling=100,
                          keys={"news.example.com": date(2026, 12, 1)})
    clock = FakeClock(day0)
    first = make(db, workspace, clock, warmup=warmup)
    step(first, clock, day0)
    assert len(relay.received) == 3
    step(first, clock, day0 + timedelta(hours=1))
    assert len(relay.received) == 3
    shut(first)
    # A new daemon (a restart) the same day: today's three are remembered.
    second = make(db, workspace, clock, warmup=warmup)
    step(second, clock, day0 + timedelta(hours=5))
    assert len(relay.received) == 3
    step(second, clock, datetime(2026, 12, 2, 0, 0, tzinfo=UTC))
    assert len(relay.received) == 3 + 6
    step(second, clock, datetime(2026, 12, 3, 0, 0, tzinfo=UTC))
    assert len(relay.received) == 10 and len(set(relay.recipients())) == 10
    assert status(db, "ramp") == "finished"
    shut(second)


def test_two_daemons_start_a_due_campaign_once(workspace: Path, db: Store,
                                               relay: RecordingRelay) -> None:
    add_subscribers(db, [(f"t{i}@example.org", None) for i in range(6)])
    due = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    schedule_at(db, workspace, "race", due, relay)
    clock = FakeClock(due)
    a, b = make(db, workspace, clock, "daemon-a"), make(db, workspace, clock, "daemon-b")

    async def both() -> None:
        await asyncio.gather(a.tick(), b.tick())
        await asyncio.gather(a.wait_passes(), b.wait_passes())

    asyncio.run(both())
    assert sorted(relay.recipients()) == [f"t{i}@example.org" for i in range(6)]
    with db.engine.connect() as conn:
        started = conn.execute(sa.select(sa.func.count()).select_from(event_t)
                               .where(event_t.c.kind == "started")).scalar_one()
    assert started == 1
    shut(a)
    shut(b)


def test_a_recurring_run_is_one_campaign_even_if_fired_twice(workspace: Path, db: Store,
                                                             relay: RecordingRelay) -> None:
    add_subscribers(db, [("d@example.org", None)])
    records.save_schedule(db, records.NewSchedule(
        "digest", "cron", definition(workspace, "digest", cron="0 9 * * mon"),
        "campaigns/weekly.yaml", relay.url, cron="0 9 * * mon", timezone="Europe/Berlin"),
        now=datetime(2026, 11, 1, tzinfo=UTC))
    run = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)
    clock = FakeClock(run)
    daemon = make(db, workspace, clock)

    async def fire() -> list[str | None]:
        return [await daemon.fire_cron("digest", run), await daemon.fire_cron("digest", run)]

    assert asyncio.run(fire()) == ["digest-20261130-0900", None]
    step(daemon, clock, run + timedelta(seconds=2))
    assert relay.recipients() == ["d@example.org"]
    assert status(db, "digest-20261130-0900") == "finished"
    with db.engine.connect() as conn:
        stored = conn.execute(sa.select(campaign_t.c.definition)
                              .where(campaign_t.c.name == "digest-20261130-0900")).scalar_one()
    assert stored["variables"]["run_date"] == "2026-11-30"
    missed = asyncio.run(daemon.fire_cron("digest", run + timedelta(days=7), status="missed"))
    assert missed == "digest-20261207-0900" and status(db, missed) == "missed"
    shut(daemon)


def test_a_recurring_run_on_a_dst_night_is_one_campaign_named_after_its_wall_time(
        workspace: Path, db: Store, relay: RecordingRelay) -> None:
    records.save_schedule(db, records.NewSchedule(
        "nightly", "cron", definition(workspace, "nightly", cron="30 2 * * *"),
        "campaigns/weekly.yaml", relay.url, cron="30 2 * * *", timezone="Europe/Berlin"),
        now=datetime(2026, 3, 1, tzinfo=UTC))
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    daemon = make(db, workspace, clock)

    def fire(now: datetime) -> str | None:
        # As APScheduler calls it: no run time given, so fire_cron looks it up.
        clock.now = now
        return finishes(lambda: asyncio.run(daemon.fire_cron("nightly")))

    # 02:30 happens twice in Berlin on 2026-10-25 (CEST, then CET): one run, the first;
    # fired again at the second 02:30 it finds that run and makes nothing new.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert fire(first + timedelta(milliseconds=200)) == "nightly-20261025-0230"
    assert fire(first + timedelta(hours=1, milliseconds=200)) is None
    # 02:30 does not exist on 2026-03-29: the run moves forward by the gap, to 03:30 CEST.
    moved = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert fire(moved + timedelta(milliseconds=200)) == "nightly-20260329-0330"
    with db.engine.connect() as conn:
        rows = {r.name: (r.scheduled_at, r.definition["variables"]["run_at"])
                for r in conn.execute(sa.select(campaign_t.c.name, campaign_t.c.scheduled_at,
                                                campaign_t.c.definition))}
    assert rows == {"nightly-20261025-0230": (first, "2026-10-25T02:30:00+02:00"),
                    "nightly-20260329-0330": (moved, "2026-03-29T03:30:00+02:00")}
    shut(daemon)


def test_stop_gives_claimed_deliveries_back(workspace: Path, db: Store,
                                            relay: RecordingRelay) -> None:
    add_subscribers(db, [("s@example.org", None)])
    due = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    schedule_at(db, workspace, "held", due, relay)
    clock = FakeClock(due)
    daemon = make(db, workspace, clock)
    step(daemon, clock, due)
    with db.engine.begin() as conn:
        # As a crashed pass would leave it: claimed by this process, lease running.
        conn.execute(sa.update(delivery_t).values(state="claimed", lease_owner=daemon.owner,
                                                lease_expires_at=due + timedelta(hours=1)))
    shut(daemon)
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(delivery_t.c.state, delivery_t.c.lease_owner)).all() == [
            ("queued", None)]


def test_serve_retries_due_deferrals_of_a_send_and_expires_dead_leases(
        workspace: Path, db: Store, relay: RecordingRelay) -> None:
    add_subscribers(db, [("late@example.org", None), ("stuck@example.org", None),
                         ("later@example.org", None)])
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    campaign = CampaignDefinition.model_validate(definition(workspace, "sent-earlier"))
    # As `dispatcher send --relay URL` leaves it: running, one deferral due, one not yet,
    # one claimed by a worker that died.
    cid = prepare_campaign(db, campaign, source_path="campaigns/weekly.yaml", relay=relay.url)
    enqueue(db, cid, campaign)
    with db.engine.begin() as conn:
        ids: dict[str, int] = dict(conn.execute(
            sa.select(subscriber_t.c.email, subscriber_t.c.id)).all())
        for email, values in (
                ("late@example.org", {"state": "deferred", "attempts": 1,
                                      "next_attempt_at": now - timedelta(minutes=1)}),
                ("later@example.org", {"state": "deferred", "attempts": 1,
                                       "next_attempt_at": now + timedelta(hours=1)}),
                ("stuck@example.org", {"state": "claimed", "lease_owner": "gone:1",
                                       "lease_expires_at": now - timedelta(minutes=1)})):
            conn.execute(sa.update(delivery_t).where(delivery_t.c.subscriber_id == ids[email])
                         .values(**values))
    clock = FakeClock(now)
    daemon = make(db, workspace, clock)
    asyncio.run(daemon.housekeeping())
    with db.engine.connect() as conn:
        stuck = conn.execute(sa.select(delivery_t.c.state, delivery_t.c.lease_owner).where(
            delivery_t.c.subscriber_id == ids["stuck@example.org"])).one()
    assert tuple(stuck) == ("queued", None)
    step(daemon, clock, now)
    assert sorted(relay.recipients()) == ["late@example.org", "stuck@example.org"]
    assert status(db, "sent-earlier") == "running"
    step(daemon, clock, now + timedelta(hours=1))
    assert sorted(relay.recipients()) == ["late@example.org", "later@example.org",
                                         "stuck@example.org"]
    assert status(db, "sent-earlier") == "finished"
    shut(daemon)
