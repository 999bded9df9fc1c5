"""Prepared stores for the dashboard and stats tests (helpers only, no tests here).

Outcomes are written with the engine's own ``claim`` and ``record``, so the
rollups are fed exactly what a real send writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dispatcher.delivery.queue import Outcome, claim, record
from dispatcher.store import Store
from dispatcher.store.models import Campaign, Delivery, Event, Subscriber

NOW = datetime(2026, 3, 20, 9, 30, 0, tzinfo=UTC)
_campaign = Campaign.__table__  # type: ignore[attr-defined]
_delivery = Delivery.__table__  # type: ignore[attr-defined]
_event = Event.__table__  # type: ignore[attr-defined]
_subscriber = Subscriber.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Prepared:
    spring: int
    autumn: int
    draft: int


def add_campaign(store: Store, name: str, *, status: str = "running", relay: str = "",
                 definition: dict[str, Any] | None = None,
                 scheduled_at: datetime | None = None) -> int:
    with store.engine.begin() as conn:
        return int(conn.execute(_campaign.insert().values(
            name=name, source_path=f"campaigns/{name}.yaml", definition=definition or {},
            status=status, relay=relay, scheduled_at=scheduled_at, started_at=NOW,
            created_at=NOW, updated_at=NOW).returning(_campaign.c.id)).scalar_one())


def add_recipients(store: Store, campaign_id: int, emails: list[str], *,
                   variants: tuple[str, ...] = ("",)) -> None:
    with store.engine.begin() as conn:
        existing = dict(conn.execute(sa.select(_subscriber.c.email, _subscriber.c.id)
                                     .where(_subscriber.c.email.in_(emails))).all())
        new = [e for e in emails if e not in existing]
        if new:
            conn.execute(_subscriber.insert(), [
                {"email": e, "name": "", "attributes": {}, "status": "active",
                 "created_at": NOW, "updated_at": NOW} for e in new])
        ids = dict(conn.execute(sa.select(_subscriber.c.email, _subscriber.c.id)
                                .where(_subscriber.c.email.in_(emails))).all())
        conn.execute(_delivery.insert(), [
            {"campaign_id": campaign_id, "subscriber_id": ids[e], "domain": e.split("@")[1],
             "variant": variants[i % len(variants)], "state": "queued", "attempts": 0,
             "updated_at": NOW} for i, e in enumerate(emails)])


def send(store: Store, campaign_id: int, plan: list[tuple[str, int | None, str]], *,
         relay: str, at: datetime) -> None:
    """Claim len(plan) deliveries and record the planned (state, code, reply) for each."""
    claimed = claim(store, campaign_id, owner="test", limit=len(plan),
                    lease=timedelta(minutes=5), now=at)
    assert len(claimed) == len(plan)
    outcomes = []
    for item, (state, code, reply) in zip(claimed, plan, strict=True):
        status = reply.split()[0] if reply[:1].isdigit() and "." in reply.split()[0] else None
        outcomes.append(Outcome(item, state, code, status, reply,
                                next_attempt_at=at if state == "deferred" else None))
    record(store, campaign_id, outcomes, relay=relay, now=at)


def add_event(store: Store, kind: str, campaign_id: int, *, at: datetime, detail: str = "",
              source: str = "http", reason: str | None = None) -> None:
    with store.engine.begin() as conn:
        conn.execute(_event.insert().values(at=at, kind=kind, campaign_id=campaign_id,
                                            source=source, detail=detail, reason=reason,
                                            data={}))


SENT = ("sent", 250, "2.0.0 queued as ABC")
DEFER_GMAIL = ("deferred", 421, "4.7.28 Gmail has detected an unusual rate of mail")
UNKNOWN_USER = ("bounced", 550, "5.1.1 The email account that you tried to reach does not exist")
MAILBOX_FULL = ("bounced", 552, "5.2.2 Mailbox full")
CONNECTION = ("deferred", None, "connection: Connection refused")


def prepare(store: Store) -> Prepared:
    """Three campaigns: one sending (A/B), one finished, one draft; outcomes of every kind."""
    spring = add_campaign(
        store, "spring-sale", relay="smtp://relay-a:25",
        definition={"schedule": {"at": "2026-03-20T09:00:00+01:00"},
                    "rate": {"per_second": 50},
                    "ab_test": {"variants": [{"name": "A", "percent": 50},
                                             {"name": "B", "percent": 50}]}},
        scheduled_at=NOW - timedelta(hours=1))
    autumn = add_campaign(store, "autumn-news", status="finished", relay="smtp://relay-b:25")
    draft = add_campaign(store, "winter-teaser", status="draft")
    add_recipients(store, spring,
                   [f"user{i}@gmail.com" for i in range(30)]
                   + [f"user{i}@example.org" for i in range(20)]
                   + [f"user{i}@yahoo.com" for i in range(10)], variants=("A", "B"))
    add_recipients(store, autumn, [f"user{i}@example.org" for i in range(10)])
    t0 = NOW - timedelta(seconds=50)
    send(store, spring, [SENT] * 20 + [DEFER_GMAIL] * 5 + [UNKNOWN_USER] * 3,
         relay="smtp://relay-a:25", at=t0)
    send(store, spring, [SENT] * 10 + [MAILBOX_FULL] * 2 + [CONNECTION],
         relay="smtp://relay-a:25", at=t0 + timedelta(seconds=20))
    send(store, autumn, [SENT] * 9 + [UNKNOWN_USER], relay="smtp://relay-b:25",
         at=NOW - timedelta(minutes=3))
    add_event(store, "unsubscribed", spring, at=t0 + timedelta(seconds=30),
              detail="one-click unsubscribe")
    add_event(store, "complained", autumn, at=NOW - timedelta(seconds=90), source="arf",
              detail="abuse report from yahoo.com")
    return Prepared(spring, autumn, draft)
