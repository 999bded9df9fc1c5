"""Statistics for the dashboard and ``dispatcher status``, rolled up incrementally.

:func:`rollup` reads only what is new since its last call (deliveries and
events past a watermark id) and adds it to the small tables of
:mod:`dispatcher.store.stats_tables`; readers (the ``stats_queries`` functions
re-exported here) read those tables, never the delivery table, so they stay
fast at millions of deliveries. The scheduler's housekeeping calls
:func:`rollup` about once a second; the dashboard and ``status`` call it too,
so they are current when a ``dispatcher send`` runs without a daemon. Calls
are serialised by a lock, so any number of callers may run it.

A delivery's state count moves when an event says so: its first outcome moves
it from ``queued``, a later one from the state of its previous outcome (a
deferral, or a ``requeued`` event written by retry-failed). Some changes move
many deliveries without an event each (cancel skips the queue, retry-failed
requeues, feedback skips a suppressed address); they all touch the campaign
row, and a campaign whose row changed is recounted once from its deliveries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store import stats_tables as t
from dispatcher.store.database import Store
from dispatcher.store.models import utcnow
from dispatcher.store.stats_batch import (
    STATE_KINDS,
    Batch,
    EventRow,
    Floors,
    insert_for,
    upsert,
)
from dispatcher.store.stats_queries import (
    BUCKET_SECONDS,
    CampaignDetail,
    CampaignRow,
    DomainRow,
    FeedRow,
    RelayHealth,
    Throughput,
    VariantRow,
    campaign_detail,
    campaigns,
    recent_events,
    relay_health,
    throughput,
    top_domains,
)
from dispatcher.store.tables import campaign_t, delivery_t, event_t

__all__ = [
    "BUCKET_SECONDS", "CampaignDetail", "CampaignRow", "DomainRow", "FeedRow", "RelayHealth",
    "RollupResult", "Throughput", "VariantRow", "campaign_detail", "campaigns", "rebuild",
    "recent_events", "relay_health", "report_relay", "rollup", "throughput", "top_domains",
]

EVENT_BATCH = 20_000
_LOOKUP_CHUNK = 5_000
DELIVERY_BATCH = 200_000
# An id missing below newer ones is a transaction still committing (PostgreSQL
# hands out ids before commit) or one rolled back; wait this long, then skip it.
GAP_GRACE = timedelta(seconds=5)
FEED_KEEP = 200
THROUGHPUT_KEEP = timedelta(hours=24)
_LOCK_ID = 7164008

@dataclass(frozen=True)
class RollupResult:
    deliveries: int
    events: int


def _advance(ids: Sequence[int], last: int, gap_id: int | None, gap_since: datetime | None,
             now: datetime) -> tuple[int, int | None, datetime | None]:
    """The new watermark over sorted ``ids``: contiguous from ``last``, gaps waited for."""
    expected = last + 1
    for i in ids:
        if i == expected:
            expected += 1
            continue
        if gap_id == expected and gap_since is not None and now - gap_since >= GAP_GRACE:
            expected, gap_id, gap_since = i + 1, None, None
            continue
        if gap_id != expected:
            gap_id, gap_since = expected, now
        return expected - 1, gap_id, gap_since
    return expected - 1, None, None


def _watermark(conn: Connection, name: str) -> Any:
    return conn.execute(sa.select(t.watermark).where(t.watermark.c.name == name)).one()


def _save_watermark(conn: Connection, name: str, last: int, gap_id: int | None,
                    gap_since: datetime | None) -> None:
    conn.execute(t.watermark.update().where(t.watermark.c.name == name)
                 .values(last_id=last, gap_id=gap_id, gap_since=gap_since))


def _lock(conn: Connection) -> None:
    # The first statement writes: on SQLite that takes the write lock, so two
    # callers cannot both read the same watermark and count twice.
    conn.execute(insert_for(conn, t.watermark).on_conflict_do_nothing(index_elements=["name"]),
                 [{"name": "delivery", "last_id": 0}, {"name": "event", "last_id": 0}])
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})


def _nothing_past(conn: Connection, table: sa.Table, lo: int) -> bool:
    """Whether no row has an id above ``lo``: the idle case, checked first and cheaply.

    ``min(id)`` is answered from the primary key whatever the planner's statistics say;
    an ``ORDER BY id LIMIT n`` with no match scanned the whole table on PostgreSQL when
    its statistics predated a large send.
    """
    return conn.execute(sa.select(sa.func.min(table.c.id)).where(table.c.id > lo)).scalar() \
        is None


def _roll_deliveries(conn: Connection, now: datetime) -> int:
    wm = _watermark(conn, "delivery")
    lo = int(wm.last_id)
    window = sa.and_(delivery_t.c.id > lo, delivery_t.c.id <= lo + DELIVERY_BATCH)
    count, top = conn.execute(sa.select(sa.func.count(), sa.func.max(delivery_t.c.id))
                              .where(window)).one()
    if not count and _nothing_past(conn, delivery_t, lo):
        return 0
    if count and count == top - lo:
        hi, gap_id, gap_since = int(top), None, None
    else:
        ids = conn.execute(sa.select(delivery_t.c.id).where(delivery_t.c.id > lo)
                           .order_by(delivery_t.c.id).limit(DELIVERY_BATCH)).scalars().all()
        if not ids:
            return 0
        hi, gap_id, gap_since = _advance(ids, lo, wm.gap_id, wm.gap_since, now)
    _save_watermark(conn, "delivery", hi, gap_id, gap_since)
    if hi == lo:
        return 0
    groups = conn.execute(
        sa.select(delivery_t.c.campaign_id, sa.func.count())
        .where(delivery_t.c.id > lo, delivery_t.c.id <= hi)
        .group_by(delivery_t.c.campaign_id)).all()
    upsert(conn, t.campaign_state, [
        {"campaign_id": cid, "variant": "", "state": "queued", "count": n}
        for cid, n in groups], add=["count"])
    return sum(n for _, n in groups)


def _recount(conn: Connection, campaign_id: int, upto: int) -> int:
    """Count the campaign's deliveries (ids <= ``upto``) by state; returns the event floor."""
    newest = sa.select(sa.func.coalesce(sa.func.max(event_t.c.id), 0)).scalar_subquery()
    # One statement, so the counts and the newest event id come from one snapshot.
    rows = conn.execute(
        sa.select(delivery_t.c.state, sa.func.count(), newest)
        .where(delivery_t.c.campaign_id == campaign_id, delivery_t.c.id <= upto)
        .group_by(delivery_t.c.state)).all()
    floor = int(rows[0][2]) if rows else int(conn.execute(sa.select(newest)).scalar_one())
    counts: dict[str, int] = defaultdict(int)
    for state, n, _ in rows:
        counts["queued" if state == "claimed" else state] += int(n)
    conn.execute(t.campaign_state.delete().where(t.campaign_state.c.campaign_id == campaign_id))
    if counts:
        conn.execute(t.campaign_state.insert(), [
            {"campaign_id": campaign_id, "variant": "", "state": k, "count": n}
            for k, n in counts.items()])
    return floor




def _sync_campaigns(conn: Connection) -> Floors:
    """Recount the campaigns whose row changed; every campaign's (event, delivery) floors."""
    upto = int(_watermark(conn, "delivery").last_id)
    sync = t.campaign_sync
    rows = conn.execute(
        sa.select(campaign_t.c.id, campaign_t.c.updated_at, sync.c.updated_at.label("seen"),
                  sync.c.event_floor, sync.c.delivery_floor)
        .select_from(campaign_t.outerjoin(sync, sync.c.campaign_id == campaign_t.c.id))).all()
    floors: Floors = {}
    for r in rows:
        if r.seen is not None and r.seen == r.updated_at:
            floors[r.id] = (int(r.event_floor), int(r.delivery_floor))
            continue
        floors[r.id] = (_recount(conn, r.id, upto), upto)
        upsert(conn, sync, [{"campaign_id": r.id, "updated_at": r.updated_at,
                              "event_floor": floors[r.id][0], "delivery_floor": upto}],
                keep_newer=("updated_at", "event_floor", "delivery_floor"))
    return floors


def _previous_states(conn: Connection, delivery_ids: set[int], upto: int) -> dict[int, str]:
    """Each delivery's state after its latest outcome event with id <= ``upto``."""
    found: dict[int, tuple[int, str]] = {}
    ids = sorted(delivery_ids)
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            sa.select(event_t.c.delivery_id, event_t.c.id, event_t.c.kind)
            .where(event_t.c.delivery_id.in_(ids[start:start + 5000]), event_t.c.id <= upto,
                   event_t.c.kind.in_(tuple(STATE_KINDS)))).all()
        for did, eid, kind in rows:
            if did not in found or found[did][0] < eid:
                found[did] = (eid, kind)
    return {did: STATE_KINDS[kind] for did, (_, kind) in found.items()}


def _prune(conn: Connection, campaign_ids: set[int | None], now: datetime) -> None:
    for cid in campaign_ids:
        where = t.feed.c.campaign_id.is_(None) if cid is None else t.feed.c.campaign_id == cid
        cutoff = conn.execute(sa.select(t.feed.c.event_id).where(where)
                              .order_by(t.feed.c.event_id.desc())
                              .offset(FEED_KEEP).limit(1)).scalar()
        if cutoff is not None:
            conn.execute(t.feed.delete().where(where, t.feed.c.event_id <= cutoff))
    conn.execute(t.throughput.delete().where(t.throughput.c.bucket < now - THROUGHPUT_KEEP))


def _new_events(conn: Connection, lo: int) -> list[EventRow]:
    """Events past ``lo`` with their delivery's domain, relay and variant.

    Two primary-key lookups rather than one join: right after a large send, before
    PostgreSQL's statistics catch up, the planner hash-joined the whole delivery table
    for a handful of new events (~200 ms a refresh at 1M deliveries).
    """
    if _nothing_past(conn, event_t, lo):
        return []
    events = conn.execute(
        sa.select(event_t.c.id, event_t.c.at, event_t.c.kind, event_t.c.campaign_id,
                  event_t.c.delivery_id, event_t.c.code, event_t.c.status, event_t.c.reason,
                  event_t.c.source, event_t.c.detail)
        .where(event_t.c.id > lo).order_by(event_t.c.id).limit(EVENT_BATCH)).all()
    wanted = sorted({e.delivery_id for e in events if e.delivery_id is not None})
    found: dict[int, tuple[str | None, str | None, str | None]] = {}
    for start in range(0, len(wanted), _LOOKUP_CHUNK):
        chunk = wanted[start:start + _LOOKUP_CHUNK]
        found.update((d.id, (d.domain, d.relay, d.variant)) for d in conn.execute(
            sa.select(delivery_t.c.id, delivery_t.c.domain, delivery_t.c.relay,
                      delivery_t.c.variant).where(delivery_t.c.id.in_(chunk))))
    missing = (None, None, None)
    return [EventRow._make((*e, *found.get(e.delivery_id, missing))) for e in events]


def _roll_events(conn: Connection, now: datetime, floors: Floors) -> int:
    wm = _watermark(conn, "event")
    lo = int(wm.last_id)
    rows = _new_events(conn, lo)
    if not rows:
        return 0
    hi, gap_id, gap_since = _advance([r.id for r in rows], lo, wm.gap_id, wm.gap_since, now)
    _save_watermark(conn, "event", hi, gap_id, gap_since)
    rows = [r for r in rows if r.id <= hi]
    if not rows:
        return 0
    previous = _previous_states(conn, {r.delivery_id for r in rows if r.delivery_id is not None
                                       and r.kind in STATE_KINDS}, lo)
    batch = Batch(floors)
    for r in rows:
        batch.add(r, previous)
    batch.write(conn, now)
    _prune(conn, {f["campaign_id"] for f in batch.feed}, now)
    return len(rows)


def rollup(store: Store, now: datetime | None = None) -> RollupResult:
    """Add what happened since the last call to the rollup tables; cheap when nothing did."""
    now = now or utcnow()
    with store.engine.begin() as conn:
        _lock(conn)
        deliveries = _roll_deliveries(conn, now)
        events = _roll_events(conn, now, _sync_campaigns(conn))
    return RollupResult(deliveries, events)


def rebuild(store: Store, now: datetime | None = None) -> RollupResult:
    """Forget the rollups and count everything again (after a restore, or to check them)."""
    now = now or utcnow()
    with store.engine.begin() as conn:
        _lock(conn)
        for table in (t.campaign_state, t.campaign_event, t.throughput, t.domain,
                      t.bounce_reason, t.relay, t.feed, t.campaign_sync):
            conn.execute(table.delete())
        conn.execute(t.watermark.update().values(last_id=0, gap_id=None, gap_since=None))
    deliveries = events = idle = 0
    step_at = now
    # Each step is a grace period later, so a gap (a rolled-back id) is skipped on the next.
    while idle < 2:
        step_at += GAP_GRACE
        step = rollup(store, step_at)
        deliveries, events = deliveries + step.deliveries, events + step.events
        idle = 0 if step.deliveries or step.events else idle + 1
    return RollupResult(deliveries, events)


def report_relay(store: Store, relay: str, *, connections: int | None = None,
                 rate_limit: float | None = None, state: str | None = None,
                 now: datetime | None = None) -> None:
    """What a running engine knows about a relay (open connections, limit, failover state)."""
    now = now or utcnow()
    with store.engine.begin() as conn:
        ins = insert_for(conn, t.relay).values(
            relay=relay, sent=0, deferred=0, bounced=0, errors=0, error_streak=0,
            connections=connections, rate_limit=rate_limit, state=state, reported_at=now)
        conn.execute(ins.on_conflict_do_update(index_elements=["relay"], set_={
            "connections": connections, "rate_limit": rate_limit, "state": state,
            "reported_at": now}))
