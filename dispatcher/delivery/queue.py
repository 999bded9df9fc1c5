"""The durable send queue: one delivery row per (campaign, subscriber).

A row moves ``queued -> claimed -> sent | deferred | bounced | failed``. A
worker claims rows with a lease; only the relay's reply moves a row on, so a
crash leaves rows ``claimed`` until the lease runs out and another worker
takes them again. Nobody is skipped; a recipient can be sent twice only if
the crash fell between the relay's 250 and the recording of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dispatcher.core.campaign import Campaign as CampaignDefinition
from dispatcher.delivery import queue_sql
from dispatcher.store.audience import audience_query
from dispatcher.store.database import Store
from dispatcher.store.models import utcnow
from dispatcher.store.subscribers import suppression_hash
from dispatcher.store.tables import campaign_t, delivery_t, event_t

OPEN_STATES = ("queued", "claimed", "deferred")


def prepare_campaign(store: Store, definition: CampaignDefinition, *, source_path: str,
                     relay: str) -> int:
    """The campaign's row id, created on first use; a finished campaign is not restarted."""
    now = utcnow()
    data = definition.model_dump(mode="json", by_alias=True)
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(campaign_t.c.id, campaign_t.c.status)
                           .where(campaign_t.c.name == definition.name)).first()
        if row is None:
            inserted = conn.execute(campaign_t.insert().values(
                name=definition.name, source_path=source_path, definition=data,
                status="running", relay=relay, started_at=now, created_at=now, updated_at=now,
            ).returning(campaign_t.c.id))
            return int(inserted.scalar_one())
        conn.execute(campaign_t.update().where(campaign_t.c.id == row.id).values(
            definition=data, relay=relay, source_path=source_path, updated_at=now,
            status="running" if row.status not in ("cancelled",) else row.status))
        return int(row.id)


def enqueue(store: Store, campaign_id: int, definition: CampaignDefinition, *,
            path: str | None = None) -> int:
    """Queue a delivery for every audience member not queued yet; returns how many were added."""
    members = audience_query(store, definition.audience, path=path).subquery()
    at = sa.func.instr(members.c.email, "@")
    domain: Any = (sa.func.split_part(members.c.email, "@", 2) if store.dialect == "postgresql"
                   else sa.func.substr(members.c.email, at + 1))
    now = utcnow()
    select = sa.select(
        sa.literal(campaign_id), members.c.id, sa.func.lower(domain),
        sa.literal("queued"), sa.literal(0), sa.literal(now, type_=delivery_t.c.updated_at.type),
        sa.literal("", type_=sa.String),
    ).where(sa.true())  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
    insert = (postgresql.insert if store.dialect == "postgresql" else sqlite.insert)(delivery_t)
    statement = insert.from_select(
        ["campaign_id", "subscriber_id", "domain", "state", "attempts", "updated_at", "variant"],
        select,
    ).on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])
    with store.engine.begin() as conn:
        # Without preserve_rowcount psycopg reports -1 for an INSERT once its cursor closes.
        return int(conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount)



def drop_if_empty(store: Store, campaign_id: int) -> None:
    """Forget a campaign row that never got a delivery: its first send stopped on an error."""
    with store.engine.begin() as conn:
        conn.execute(campaign_t.delete().where(
            campaign_t.c.id == campaign_id,
            ~sa.exists().where(delivery_t.c.campaign_id == campaign_id)))

@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    attributes: dict[str, Any]
    attempts: int
    variant: str = ""
    first_attempt_at: datetime | None = None
    domain: str = ""


def claim(store: Store, campaign_id: int, *, owner: str, limit: int, lease: timedelta,
          now: datetime) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries to ``owner``.

    Recipients who unsubscribed, bounced, complained or were suppressed since the
    campaign was queued are marked ``skipped`` here, at the last moment before sending.
    """
    with store.engine.begin() as conn:
        ids = _lease(conn, campaign_id, owner=owner, limit=limit, lease=lease, now=now)
        if not ids:
            return []
        rows = queue_sql.claimed_rows(conn, ids)
        hashes = {r.id: suppression_hash(r.email) for r in rows}
        suppressed = queue_sql.suppressed(conn, list(hashes.values()))
        skip = [r for r in rows if r.status != "active" or hashes[r.id] in suppressed]
        if skip:
            conn.execute(delivery_t.update().where(delivery_t.c.id.in_([r.id for r in skip]))
                         .values(state="skipped", lease_owner=None, lease_expires_at=None,
                                 last_reply=sa.case(*((delivery_t.c.id == r.id, _skip_reason(r))
                                                      for r in skip)),
                                 updated_at=now))
            conn.execute(event_t.insert(), [{
                "at": now, "kind": "skipped", "campaign_id": campaign_id,
                "subscriber_id": r.subscriber_id, "delivery_id": r.id, "code": None,
                "status": None, "reason": "suppressed", "source": "smtp",
                "detail": _skip_reason(r), "data": {}} for r in skip])
    skipped = {r.id for r in skip}
    return [Claimed(r.id, r.subscriber_id, r.email, r.name, r.attributes, r.attempts,
                    r.variant, r.first_attempt_at, r.domain)
            for r in rows if r.id not in skipped]


def _due(now: datetime) -> sa.ColumnElement[bool]:
    d = delivery_t.c
    return sa.or_(
        sa.and_(d.state.in_(("queued", "deferred")),
                sa.or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now)),
        sa.and_(d.state == "claimed", d.lease_expires_at < now))


def _picks(campaign_id: int, now: datetime, pg: bool) -> list[sa.Select[Any]]:
    """The due rows, asked for in parts that each walk ``ix_delivery_claim``.

    Asked as one ``OR`` ordered by id, SQLite read and sorted every row of the
    campaign for each claim (a claim of 500 cost ~45 ms at 200k recipients,
    quadratic over a campaign); each part here reads about what it returns.
    Expired leases first, then retries that are due (a deferral whose time was
    cleared counts as due now), then fresh rows in id order (free on SQLite,
    where the index ends in the rowid; PostgreSQL would sort every fresh row
    for it, so there the index's order stands).
    """
    d = delivery_t.c
    mine = d.campaign_id == campaign_id
    fresh = sa.select(d.id).where(mine, d.state == "queued", d.next_attempt_at.is_(None))
    return [
        sa.select(d.id).where(mine, d.state == "claimed", d.lease_expires_at < now),
        sa.select(d.id).where(mine, d.state.in_(("queued", "deferred")),
                              d.next_attempt_at <= now),
        sa.select(d.id).where(mine, d.state == "deferred", d.next_attempt_at.is_(None)),
        fresh if pg else fresh.order_by(d.id),
    ]


def _lease(conn: Connection, campaign_id: int, *, owner: str, limit: int, lease: timedelta,
           now: datetime) -> list[int]:
    pg = conn.dialect.name == "postgresql"
    while True:
        ids: list[int] = []
        for pick in _picks(campaign_id, now, pg):
            if len(ids) >= limit:
                break
            pick = pick.limit(limit - len(ids))
            ids.extend(conn.execute(pick.with_for_update(skip_locked=True) if pg else pick)
                       .scalars())
        if not ids:
            return []
        # Still due is checked again as the rows are written: SQLite has no row locks, so
        # another worker may have leased some of them since we looked.
        taken = conn.execute(
            delivery_t.update().where(delivery_t.c.id.in_(ids), _due(now))
            .values(state="claimed", lease_owner=owner, lease_expires_at=now + lease,
                    updated_at=now)
            .returning(delivery_t.c.id)).scalars().all()
        if taken:
            return sorted(taken)


def _skip_reason(row: Any) -> str:
    if row.status != "active":
        return f"not sent: subscriber is {row.status}"
    return "not sent: address is on the suppression list"


def release(store: Store, delivery_ids: Sequence[int], *, now: datetime) -> None:
    """Give claimed deliveries back to the queue untouched (pause, shutdown)."""
    if not delivery_ids:
        return
    with store.engine.begin() as conn:
        conn.execute(delivery_t.update().where(delivery_t.c.id.in_(list(delivery_ids)),
                                               delivery_t.c.state == "claimed")
                     .values(state="queued", lease_owner=None, lease_expires_at=None,
                             updated_at=now))


def release_dead(store: Store, campaign_id: int, *, host: str, alive: Callable[[int], bool],
                 now: datetime) -> int:
    """Requeue at once the claims of processes on ``host`` that no longer run (kill -9)."""
    with store.engine.begin() as conn:
        owners = [o for (o,) in conn.execute(
            sa.select(delivery_t.c.lease_owner).distinct().where(
                delivery_t.c.campaign_id == campaign_id, delivery_t.c.state == "claimed",
                delivery_t.c.lease_owner.like(f"{host}:%")))]
        dead = [o for o in owners if o and o.rsplit(":", 1)[1].isdigit()
                and not alive(int(o.rsplit(":", 1)[1]))]
        if not dead:
            return 0
        result = conn.execute(delivery_t.update().where(
            delivery_t.c.campaign_id == campaign_id, delivery_t.c.state == "claimed",
            delivery_t.c.lease_owner.in_(dead)).values(
            state="queued", lease_owner=None, lease_expires_at=None, updated_at=now))
        return int(result.rowcount or 0)


@dataclass(frozen=True)
class Outcome:
    claimed: Claimed
    state: str  # sent | deferred | bounced | failed | skipped
    code: int | None
    status: str | None
    reply: str
    message_id: str | None = None
    next_attempt_at: datetime | None = None
    kind: str | None = None  # hard | soft (classify_reply), for bounces and failures
    reason: str | None = None
    variant: str = ""
    # False when the message was never offered to a server (a local deferral).
    attempted: bool = True
    relay: str = ""  # the relay that answered


def record(store: Store, campaign_id: int, outcomes: Sequence[Outcome], *, relay: str,
           now: datetime) -> None:
    """Write a batch of outcomes and their events in one transaction.

    ``relay`` is the relay column for outcomes that do not name the relay that answered.
    """
    if not outcomes:
        return
    with store.engine.begin() as conn:
        queue_sql.write_outcomes(conn, campaign_id, outcomes, relay=relay, now=now)


def finish_if_done(store: Store, campaign_id: int) -> bool:
    """Mark the campaign finished when no delivery is left to try; True if it is."""
    with store.engine.begin() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(delivery_t).where(
            delivery_t.c.campaign_id == campaign_id,
            delivery_t.c.state.in_(OPEN_STATES))).scalar_one()
        if left:
            return False
        now = utcnow()
        conn.execute(campaign_t.update().where(campaign_t.c.id == campaign_id,
                                               campaign_t.c.status == "running")
                     .values(status="finished", finished_at=now, updated_at=now))
        return True


COUNT_KEYS = ("total", "queued", "sent", "deferred", "bounced", "failed", "skipped",
              "unsubscribed", "complained")


def campaign_counts(store: Store, campaign_id: int | None = None) -> list[dict[str, Any]]:
    """Per campaign (or the one given): name, status and delivery counts by state (plus
    unsubscribes, complaints)."""
    by_state = (sa.select(delivery_t.c.campaign_id, delivery_t.c.state, sa.func.count())
                .group_by(delivery_t.c.campaign_id, delivery_t.c.state))
    by_event = (sa.select(event_t.c.campaign_id, event_t.c.kind, sa.func.count())
                .where(event_t.c.kind.in_(("unsubscribed", "complained")))
                .group_by(event_t.c.campaign_id, event_t.c.kind))
    campaigns_query = sa.select(campaign_t.c.id, campaign_t.c.name, campaign_t.c.status)
    if campaign_id is not None:
        by_state = by_state.where(delivery_t.c.campaign_id == campaign_id)
        by_event = by_event.where(event_t.c.campaign_id == campaign_id)
        campaigns_query = campaigns_query.where(campaign_t.c.id == campaign_id)
    with store.engine.connect() as conn:
        campaigns = conn.execute(campaigns_query.order_by(campaign_t.c.id)).all()
        states = conn.execute(by_state).all()
        events = conn.execute(by_event).all()
    result: dict[int, dict[str, Any]] = {
        c.id: {"name": c.name, "status": c.status, **dict.fromkeys(COUNT_KEYS, 0)}
        for c in campaigns}
    for cid, state, count in states:
        row = result[cid]
        key = "queued" if state == "claimed" else state
        row[key] = row.get(key, 0) + count
        row["total"] += count
    for cid, kind, count in events:
        if cid in result:
            result[cid][kind] += count
    return list(result.values())
