"""The deltas one batch of new events adds to the rollup tables (see :mod:`.stats`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dispatcher.store import stats_tables as t
from dispatcher.store.stats_queries import BUCKET_SECONDS

# Campaign id -> (event id, delivery id) its last recount had seen.
Floors = dict[int, tuple[int, int]]

# Event kind -> the delivery state it puts the delivery in.
STATE_KINDS = {"sent": "sent", "deferred": "deferred", "bounced": "bounced",
               "failed": "failed", "skipped": "skipped", "requeued": "queued"}
ATTEMPT_KINDS = ("sent", "deferred", "bounced", "failed")
FEED_KINDS = frozenset({"deferred", "bounced", "failed", "unsubscribed", "complained",
                        "error", "autoreply", "suppressed", "requeued"})
# Sources of events that report on mail sent earlier, not an SMTP attempt now.
FEEDBACK_SOURCES = frozenset({"dsn", "http", "mailto", "arf", "feedback", "cli", "import",
                              "imap", "webhook"})


class EventRow(NamedTuple):
    id: int
    at: datetime
    kind: str
    campaign_id: int | None
    delivery_id: int | None
    code: int | None
    status: str | None
    reason: str | None
    source: str
    detail: str
    domain: str | None
    relay: str | None
    variant: str | None


def insert_for(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def upsert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]], *,
           add: Iterable[str] = (), keep_newer: Iterable[str] = ()) -> None:
    """Insert rows; on conflict add the ``add`` columns and take non-null ``keep_newer`` ones."""
    if not rows:
        return
    ins = insert_for(conn, table)
    keys = [c.name for c in table.primary_key.columns]
    updates: dict[str, Any] = {c: table.c[c] + ins.excluded[c] for c in add}
    updates.update({c: sa.func.coalesce(ins.excluded[c], table.c[c]) for c in keep_newer})
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=updates), list(rows))


def _bucket(at: datetime) -> datetime:
    return at.replace(second=at.second - at.second % BUCKET_SECONDS, microsecond=0)


def _relay_error(kind: str, code: int | None) -> bool:
    """A failure to talk to the relay at all (no reply code), not a recipient's rejection.

    A 421 on one recipient is usually the destination pushing back through a
    healthy relay ([TS04] and the like), so it counts as a deferral, not an error.
    """
    return kind in ("deferred", "failed") and code is None


class Batch:
    """What one batch of events adds to the rollup tables, written by :meth:`write`."""

    def __init__(self, floors: Floors) -> None:
        self.floors = floors
        self.states: dict[tuple[int, str, str], int] = defaultdict(int)
        self.kinds: dict[tuple[int, str, str], int] = defaultdict(int)
        self.throughput: dict[tuple[datetime, int, str], dict[str, int]] = {}
        self.domains: dict[tuple[int, str], dict[str, Any]] = {}
        self.reasons: dict[tuple[int, str, str], int] = defaultdict(int)
        self.relays: dict[str, list[Any]] = defaultdict(list)
        self.feed: list[dict[str, Any]] = []

    def add(self, r: EventRow, previous: dict[int, str]) -> None:
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
        upsert(conn, t.campaign_state, [
            {"campaign_id": c, "variant": v, "state": s, "count": n}
            for (c, v, s), n in self.states.items() if n], add=["count"])
        upsert(conn, t.campaign_event, [
            {"campaign_id": c, "variant": v, "kind": k, "count": n}
            for (c, v, k), n in self.kinds.items()], add=["count"])
        upsert(conn, t.throughput, [
            {"bucket": b, "campaign_id": c, "relay": r, **n}
            for (b, c, r), n in self.throughput.items()], add=ATTEMPT_KINDS)
        upsert(conn, t.domain, [
            {"campaign_id": c, "domain": d, **v, "updated_at": now}
            for (c, d), v in self.domains.items()],
            add=(*ATTEMPT_KINDS, "complained"),
            keep_newer=("last_code", "last_reply", "last_deferred_at", "updated_at"))
        upsert(conn, t.bounce_reason, [
            {"campaign_id": c, "domain": d, "reason": r, "count": n}
            for (c, d, r), n in self.reasons.items()], add=["count"])
        self._write_relays(conn)
        if self.feed:
            conn.execute(insert_for(conn, t.feed).on_conflict_do_nothing(
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
        ins = insert_for(conn, t.relay)
        conn.execute(ins.on_conflict_do_update(index_elements=["relay"], set_={
            **{c: t.relay.c[c] + ins.excluded[c]
               for c in ("sent", "deferred", "bounced", "errors")},
            **{c: ins.excluded[c]
               for c in ("error_streak", "last_ok_at", "last_error_at", "last_error")},
        }), rows)

