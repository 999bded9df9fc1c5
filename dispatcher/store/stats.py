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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dispatcher.store import stats_tables as t
from dispatcher.store.database import Store
from dispatcher.store.models import Campaign, Delivery, Event, utcnow
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

__all__ = [
    "BUCKET_SECONDS", "CampaignDetail", "CampaignRow", "DomainRow", "FeedRow", "RelayHealth",
    "RollupResult", "Throughput", "VariantRow", "campaign_detail", "campaigns", "rebuild",
    "recent_events", "relay_health", "report_relay", "rollup", "throughput", "top_domains",
]

_campaign = Campaign.__table__  # type: ignore[attr-defined]
_delivery = Delivery.__table__  # type: ignore[attr-defined]
_event = Event.__table__  # type: ignore[attr-defined]

EVENT_BATCH = 20_000
DELIVERY_BATCH = 200_000
# An id missing below newer ones is a transaction still committing (PostgreSQL
# hands out ids before commit) or one rolled back; wait this long, then skip it.
GAP_GRACE = timedelta(seconds=5)
FEED_KEEP = 200
THROUGHPUT_KEEP = timedelta(hours=24)
_LOCK_ID = 7164008

# Event kind -> the delivery state it puts the delivery in.
STATE_KINDS = {"sent": "sent", "deferred": "deferred", "bounced": "bounced",
               "failed": "failed", "skipped": "skipped", "requeued": "queued"}
ATTEMPT_KINDS = ("sent", "deferred", "bounced", "failed")
FEED_KINDS = frozenset({"deferred", "bounced", "failed", "unsubscribed", "complained",
                        "error", "autoreply", "suppressed", "requeued"})
# Sources of events that report on mail sent earlier, not an SMTP attempt now.
FEEDBACK_SOURCES = frozenset({"dsn", "http", "mailto", "arf", "feedback", "cli", "import",
                              "imap", "webhook"})


@dataclass(frozen=True)
class RollupResult:
    deliveries: int
    events: int


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _upsert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], *,
            add: Iterable[str] = (), keep_newer: Iterable[str] = ()) -> None:
    """Insert rows; on conflict add the ``add`` columns and take non-null ``keep_newer`` ones."""
    if not rows:
        return
    ins = _insert(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    updates: dict[str, Any] = {c: table.c[c] + ins.excluded[c] for c in add}
    updates.update({c: sa.func.coalesce(ins.excluded[c], table.c[c]) for c in keep_newer})
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=updates), list(rows))


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
    conn.execute(_insert(conn, t.watermark).on_conflict_do_nothing(index_elements=["name"]),
                 [{"name": "delivery", "last_id": 0}, {"name": "event", "last_id": 0}])
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_ID})


def _roll_deliveries(conn: Connection, now: datetime) -> int:
    wm = _watermark(conn, "delivery")
    lo = int(wm.last_id)
    window = sa.and_(_delivery.c.id > lo, _delivery.c.id <= lo + DELIVERY_BATCH)
    count, top = conn.execute(sa.select(sa.func.count(), sa.func.max(_delivery.c.id))
                              .where(window)).one()
    if count and count == top - lo:
        hi, gap_id, gap_since = int(top), None, None
    else:
        ids = conn.execute(sa.select(_delivery.c.id).where(_delivery.c.id > lo)
                           .order_by(_delivery.c.id).limit(DELIVERY_BATCH)).scalars().all()
        if not ids:
            return 0
        hi, gap_id, gap_since = _advance(ids, lo, wm.gap_id, wm.gap_since, now)
    _save_watermark(conn, "delivery", hi, gap_id, gap_since)
    if hi == lo:
        return 0
    groups = conn.execute(
        sa.select(_delivery.c.campaign_id, sa.func.count())
        .where(_delivery.c.id > lo, _delivery.c.id <= hi)
        .group_by(_delivery.c.campaign_id)).all()
    _upsert(conn, t.campaign_state, [
        {"campaign_id": cid, "variant": "", "state": "queued", "count": n}
        for cid, n in groups], add=["count"])
    return sum(n for _, n in groups)


def _recount(conn: Connection, campaign_id: int, upto: int) -> int:
    """Count the campaign's deliveries (ids <= ``upto``) by state; returns the event floor."""
    newest = sa.select(sa.func.coalesce(sa.func.max(_event.c.id), 0)).scalar_subquery()
    # One statement, so the counts and the newest event id come from one snapshot.
    rows = conn.execute(
        sa.select(_delivery.c.state, sa.func.count(), newest)
        .where(_delivery.c.campaign_id == campaign_id, _delivery.c.id <= upto)
        .group_by(_delivery.c.state)).all()
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


Floors = dict[int, tuple[int, int]]


def _sync_campaigns(conn: Connection) -> Floors:
    """Recount the campaigns whose row changed; every campaign's (event, delivery) floors."""
    upto = int(_watermark(conn, "delivery").last_id)
    sync = t.campaign_sync
    rows = conn.execute(
        sa.select(_campaign.c.id, _campaign.c.updated_at, sync.c.updated_at.label("seen"),
                  sync.c.event_floor, sync.c.delivery_floor)
        .select_from(_campaign.outerjoin(sync, sync.c.campaign_id == _campaign.c.id))).all()
    floors: Floors = {}
    for r in rows:
        if r.seen is not None and r.seen == r.updated_at:
            floors[r.id] = (int(r.event_floor), int(r.delivery_floor))
            continue
        floors[r.id] = (_recount(conn, r.id, upto), upto)
        _upsert(conn, sync, [{"campaign_id": r.id, "updated_at": r.updated_at,
                              "event_floor": floors[r.id][0], "delivery_floor": upto}],
                keep_newer=("updated_at", "event_floor", "delivery_floor"))
    return floors


def _previous_states(conn: Connection, delivery_ids: set[int], upto: int) -> dict[int, str]:
    """Each delivery's state after its latest outcome event with id <= ``upto``."""
    found: dict[int, tuple[int, str]] = {}
    ids = sorted(delivery_ids)
    for start in range(0, len(ids), 5000):
        rows = conn.execute(
            sa.select(_event.c.delivery_id, _event.c.id, _event.c.kind)
            .where(_event.c.delivery_id.in_(ids[start:start + 5000]), _event.c.id <= upto,
                   _event.c.kind.in_(tuple(STATE_KINDS)))).all()
        for did, eid, kind in rows:
            if did not in found or found[did][0] < eid:
                found[did] = (eid, kind)
    return {did: STATE_KINDS[kind] for did, (_, kind) in found.items()}


def _bucket(at: datetime) -> datetime:
    return at.replace(second=at.second - at.second % BUCKET_SECONDS, microsecond=0)


def _relay_error(kind: str, code: int | None) -> bool:
    """A failure to talk to the relay at all (no reply code), not a recipient's rejection.

    A 421 on one recipient is usually the destination pushing back through a
    healthy relay ([TS04] and the like), so it counts as a deferral, not an error.
    """
    return kind in ("deferred", "failed") and code is None


class _Batch:
    """The deltas one batch of events adds to the rollup tables."""

    def __init__(self, floors: Floors) -> None:
        self.floors = floors
        self.states: dict[tuple[int, str, str], int] = defaultdict(int)
        self.kinds: dict[tuple[int, str, str], int] = defaultdict(int)
        self.throughput: dict[tuple[datetime, int, str], dict[str, int]] = {}
        self.domains: dict[tuple[int, str], dict[str, Any]] = {}
        self.reasons: dict[tuple[int, str, str], int] = defaultdict(int)
        self.relays: dict[str, list[Any]] = defaultdict(list)
        self.feed: list[dict[str, Any]] = []

    def add(self, r: Any, previous: dict[int, str]) -> None:
        cid, kind, variant = r.campaign_id, r.kind, r.variant or ""
        if kind in STATE_KINDS and r.delivery_id is not None and cid is not None:
            before, after = previous.get(r.delivery_id, "queued"), STATE_KINDS[kind]
            if before == "failed" and kind != "requeued":
                # "failed" is final unless retry-failed requeued it (the recount of
                # the campaign then counted it queued): a later outcome means it was.
                before = "queued"
            # States are not split by variant: the engine may pick a delivery's
            # variant only when it sends it, after it was counted as queued.
            if before != after and not self._recounted(cid, r.id, r.delivery_id):
                self.states[(cid, "", before)] -= 1
                self.states[(cid, "", after)] += 1
            previous[r.delivery_id] = after
        if cid is not None:
            self.kinds[(cid, variant, kind)] += 1
        # A failure without a reply code and relay never reached a server (a template
        # error for this recipient): not an SMTP outcome.
        attempt = (kind in ATTEMPT_KINDS and r.source not in FEEDBACK_SOURCES
                   and not (kind == "failed" and r.code is None and not r.relay))
        if attempt:
            tp = self.throughput.setdefault((_bucket(r.at), cid or 0, r.relay or ""),
                                            dict.fromkeys(ATTEMPT_KINDS, 0))
            tp[kind] += 1
            if r.relay:
                self.relays[r.relay].append(r)
        if r.domain and cid is not None and (attempt or kind in ("bounced", "complained")):
            d = self.domains.setdefault((cid, r.domain), {
                "sent": 0, "deferred": 0, "bounced": 0, "failed": 0, "complained": 0,
                "last_code": None, "last_reply": None, "last_deferred_at": None})
            d[kind] += 1
            if kind != "sent" and kind != "complained":
                d["last_code"], d["last_reply"] = r.code, (r.detail or "")[:500]
            if kind == "deferred":
                d["last_deferred_at"] = r.at
        if kind == "bounced" and cid is not None:
            reason = r.reason or r.status or (str(r.code) if r.code else "unknown")
            self.reasons[(cid, r.domain or "", reason[:64])] += 1
        if kind in FEED_KINDS:
            self.feed.append({
                "event_id": r.id, "at": r.at, "campaign_id": cid, "kind": kind,
                "domain": r.domain or "", "relay": r.relay or "", "code": r.code,
                "status": r.status, "reason": r.reason, "detail": (r.detail or "")[:500]})

    def _recounted(self, campaign_id: int, event_id: int, delivery_id: int) -> bool:
        """Whether the campaign's last recount already saw this event's effect."""
        events, deliveries = self.floors.get(campaign_id, (0, 0))
        return event_id <= events and delivery_id <= deliveries

    def write(self, conn: Connection, now: datetime) -> None:
        _upsert(conn, t.campaign_state, [
            {"campaign_id": c, "variant": v, "state": s, "count": n}
            for (c, v, s), n in self.states.items() if n], add=["count"])
        _upsert(conn, t.campaign_event, [
            {"campaign_id": c, "variant": v, "kind": k, "count": n}
            for (c, v, k), n in self.kinds.items()], add=["count"])
        _upsert(conn, t.throughput, [
            {"bucket": b, "campaign_id": c, "relay": r, **n}
            for (b, c, r), n in self.throughput.items()], add=ATTEMPT_KINDS)
        _upsert(conn, t.domain, [
            {"campaign_id": c, "domain": d, **v, "updated_at": now}
            for (c, d), v in self.domains.items()],
            add=(*ATTEMPT_KINDS, "complained"),
            keep_newer=("last_code", "last_reply", "last_deferred_at", "updated_at"))
        _upsert(conn, t.bounce_reason, [
            {"campaign_id": c, "domain": d, "reason": r, "count": n}
            for (c, d, r), n in self.reasons.items()], add=["count"])
        self._write_relays(conn)
        if self.feed:
            conn.execute(_insert(conn, t.feed).on_conflict_do_nothing(
                index_elements=["event_id"]), self.feed)

    def _write_relays(self, conn: Connection) -> None:
        if not self.relays:
            return
        existing = {r.relay: r for r in conn.execute(
            sa.select(t.relay).where(t.relay.c.relay.in_(list(self.relays))))}
        rows = []
        for name, events in self.relays.items():
            old = existing.get(name)
            row: dict[str, Any] = {
                "relay": name, "sent": 0, "deferred": 0, "bounced": 0, "errors": 0,
                "error_streak": old.error_streak if old else 0,
                "last_ok_at": old.last_ok_at if old else None,
                "last_error_at": old.last_error_at if old else None,
                "last_error": old.last_error if old else None}
            for e in events:
                if e.kind in ("sent", "deferred", "bounced"):
                    row[e.kind] += 1
                if e.kind == "sent":
                    row["error_streak"], row["last_ok_at"] = 0, e.at
                elif _relay_error(e.kind, e.code):
                    row["errors"] += 1
                    row["error_streak"] += 1
                    row["last_error_at"], row["last_error"] = e.at, (e.detail or "")[:500]
            rows.append(row)
        ins = _insert(conn, t.relay)
        conn.execute(ins.on_conflict_do_update(index_elements=["relay"], set_={
            **{c: t.relay.c[c] + ins.excluded[c]
               for c in ("sent", "deferred", "bounced", "errors")},
            **{c: ins.excluded[c]
               for c in ("error_streak", "last_ok_at", "last_error_at", "last_error")},
        }), rows)


def _prune(conn: Connection, campaign_ids: set[int | None], now: datetime) -> None:
    for cid in campaign_ids:
        where = t.feed.c.campaign_id.is_(None) if cid is None else t.feed.c.campaign_id == cid
        cutoff = conn.execute(sa.select(t.feed.c.event_id).where(where)
                              .order_by(t.feed.c.event_id.desc())
                              .offset(FEED_KEEP).limit(1)).scalar()
        if cutoff is not None:
            conn.execute(t.feed.delete().where(where, t.feed.c.event_id <= cutoff))
    conn.execute(t.throughput.delete().where(t.throughput.c.bucket < now - THROUGHPUT_KEEP))


def _roll_events(conn: Connection, now: datetime, floors: Floors) -> int:
    wm = _watermark(conn, "event")
    lo = int(wm.last_id)
    rows = conn.execute(
        sa.select(_event.c.id, _event.c.at, _event.c.kind, _event.c.campaign_id,
                  _event.c.delivery_id, _event.c.code, _event.c.status, _event.c.reason,
                  _event.c.source, _event.c.detail, _delivery.c.domain, _delivery.c.relay,
                  _delivery.c.variant)
        .select_from(_event.outerjoin(_delivery, _delivery.c.id == _event.c.delivery_id))
        .where(_event.c.id > lo).order_by(_event.c.id).limit(EVENT_BATCH)).all()
    if not rows:
        return 0
    hi, gap_id, gap_since = _advance([r.id for r in rows], lo, wm.gap_id, wm.gap_since, now)
    _save_watermark(conn, "event", hi, gap_id, gap_since)
    rows = [r for r in rows if r.id <= hi]
    if not rows:
        return 0
    previous = _previous_states(conn, {r.delivery_id for r in rows if r.delivery_id is not None
                                       and r.kind in STATE_KINDS}, lo)
    batch = _Batch(floors)
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
        ins = _insert(conn, t.relay).values(
            relay=relay, sent=0, deferred=0, bounced=0, errors=0, error_streak=0,
            connections=connections, rate_limit=rate_limit, state=state, reported_at=now)
        conn.execute(ins.on_conflict_do_update(index_elements=["relay"], set_={
            "connections": connections, "rate_limit": rate_limit, "state": state,
            "reported_at": now}))
