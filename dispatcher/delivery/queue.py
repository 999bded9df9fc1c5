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
from dispatcher.store.audience import audience_query
from dispatcher.store.database import Store
from dispatcher.store.models import Campaign, Delivery, Event, Subscriber, Suppression, utcnow
from dispatcher.store.subscribers import suppression_hash

_campaign = Campaign.__table__  # type: ignore[attr-defined]
_delivery = Delivery.__table__  # type: ignore[attr-defined]
_event = Event.__table__  # type: ignore[attr-defined]
_subscriber = Subscriber.__table__  # type: ignore[attr-defined]
_suppression = Suppression.__table__  # type: ignore[attr-defined]

OPEN_STATES = ("queued", "claimed", "deferred")


def prepare_campaign(store: Store, definition: CampaignDefinition, *, source_path: str,
                     relay: str) -> int:
    """The campaign's row id, created on first use; a finished campaign is not restarted."""
    now = utcnow()
    data = definition.model_dump(mode="json", by_alias=True)
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(_campaign.c.id, _campaign.c.status)
                           .where(_campaign.c.name == definition.name)).first()
        if row is None:
            inserted = conn.execute(_campaign.insert().values(
                name=definition.name, source_path=source_path, definition=data,
                status="running", relay=relay, started_at=now, created_at=now, updated_at=now,
            ).returning(_campaign.c.id))
            return int(inserted.scalar_one())
        conn.execute(_campaign.update().where(_campaign.c.id == row.id).values(
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
        sa.literal("queued"), sa.literal(0), sa.literal(now, type_=_delivery.c.updated_at.type),
        sa.literal("", type_=sa.String),
    ).where(sa.true())  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
    insert = (postgresql.insert if store.dialect == "postgresql" else sqlite.insert)(_delivery)
    statement = insert.from_select(
        ["campaign_id", "subscriber_id", "domain", "state", "attempts", "updated_at", "variant"],
        select,
    ).on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])
    with store.engine.begin() as conn:
        # Without preserve_rowcount psycopg reports -1 for an INSERT once its cursor closes.
        return int(conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount)


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
    """Lease up to ``limit`` due deliveries to ``owner``, in one statement.

    Recipients who unsubscribed, bounced, complained or were suppressed since the
    campaign was queued are marked ``skipped`` here, at the last moment before sending.
    """
    due = sa.or_(
        sa.and_(_delivery.c.state.in_(("queued", "deferred")),
                sa.or_(_delivery.c.next_attempt_at.is_(None), _delivery.c.next_attempt_at <= now)),
        sa.and_(_delivery.c.state == "claimed", _delivery.c.lease_expires_at < now),
    )
    pick = (sa.select(_delivery.c.id).where(_delivery.c.campaign_id == campaign_id, due)
            .order_by(_delivery.c.id).limit(limit))
    if store.dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    statement = (_delivery.update().where(_delivery.c.id.in_(pick.scalar_subquery()))
                 .values(state="claimed", lease_owner=owner, lease_expires_at=now + lease,
                         updated_at=now)
                 .returning(_delivery.c.id))
    with store.engine.begin() as conn:
        ids = [row[0] for row in conn.execute(statement)]
        if not ids:
            return []
        rows = conn.execute(
            sa.select(_delivery.c.id, _delivery.c.subscriber_id, _delivery.c.attempts,
                      _delivery.c.variant, _delivery.c.first_attempt_at, _delivery.c.domain,
                      _subscriber.c.email, _subscriber.c.name, _subscriber.c.attributes,
                      _subscriber.c.status)
            .join(_subscriber, _subscriber.c.id == _delivery.c.subscriber_id)
            .where(_delivery.c.id.in_(ids)).order_by(_delivery.c.id)).all()
        suppressed = _suppressed(conn, [r.email for r in rows])
        skip = [r for r in rows
                if r.status != "active" or suppression_hash(r.email) in suppressed]
        if skip:
            conn.execute(_delivery.update().where(_delivery.c.id.in_([r.id for r in skip]))
                         .values(state="skipped", lease_owner=None, lease_expires_at=None,
                                 last_reply=sa.case(*((_delivery.c.id == r.id, _skip_reason(r))
                                                      for r in skip)),
                                 updated_at=now))
            conn.execute(_event.insert(), [{
                "at": now, "kind": "skipped", "campaign_id": campaign_id,
                "subscriber_id": r.subscriber_id, "delivery_id": r.id, "code": None,
                "status": None, "reason": "suppressed", "source": "smtp",
                "detail": _skip_reason(r), "data": {}} for r in skip])
    skipped = {r.id for r in skip}
    return [Claimed(r.id, r.subscriber_id, r.email, r.name, r.attributes or {}, r.attempts,
                    r.variant or "", r.first_attempt_at, r.domain or "")
            for r in rows if r.id not in skipped]


def _suppressed(conn: Connection, emails: Sequence[str]) -> set[str]:
    hashes = [suppression_hash(e) for e in emails]
    found: set[str] = set()
    for i in range(0, len(hashes), 500):
        found.update(h for (h,) in conn.execute(
            sa.select(_suppression.c.email_hash)
            .where(_suppression.c.email_hash.in_(hashes[i:i + 500]))))
    return found


def _skip_reason(row: Any) -> str:
    if row.status != "active":
        return f"not sent: subscriber is {row.status}"
    return "not sent: address is on the suppression list"


def release(store: Store, delivery_ids: Sequence[int], *, now: datetime) -> None:
    """Give claimed deliveries back to the queue untouched (pause, shutdown)."""
    if not delivery_ids:
        return
    with store.engine.begin() as conn:
        conn.execute(_delivery.update().where(_delivery.c.id.in_(list(delivery_ids)),
                                              _delivery.c.state == "claimed")
                     .values(state="queued", lease_owner=None, lease_expires_at=None,
                             updated_at=now))


def release_dead(store: Store, campaign_id: int, *, host: str, alive: Callable[[int], bool],
                 now: datetime) -> int:
    """Requeue at once the claims of processes on ``host`` that no longer run (kill -9)."""
    with store.engine.begin() as conn:
        owners = [o for (o,) in conn.execute(
            sa.select(_delivery.c.lease_owner).distinct().where(
                _delivery.c.campaign_id == campaign_id, _delivery.c.state == "claimed",
                _delivery.c.lease_owner.like(f"{host}:%")))]
        dead = [o for o in owners if o and o.rsplit(":", 1)[1].isdigit()
                and not alive(int(o.rsplit(":", 1)[1]))]
        if not dead:
            return 0
        result = conn.execute(_delivery.update().where(
            _delivery.c.campaign_id == campaign_id, _delivery.c.state == "claimed",
            _delivery.c.lease_owner.in_(dead)).values(
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


def record(store: Store, campaign_id: int, outcomes: Sequence[Outcome], *, relay: str,
           now: datetime) -> None:
    """Write a batch of outcomes and their events in one transaction."""
    if not outcomes:
        return
    params = [{
        "b_id": o.claimed.delivery_id, "b_state": o.state,
        "b_attempts": o.claimed.attempts + (1 if o.attempted else 0),
        "b_variant": o.variant or o.claimed.variant,
        "b_code": o.code, "b_status": o.status, "b_reply": o.reply[:2000],
        "b_message_id": o.message_id, "b_next": o.next_attempt_at,
        "b_sent": now if o.state == "sent" else None,
    } for o in outcomes]
    update = (_delivery.update().where(_delivery.c.id == sa.bindparam("b_id")).values(
        state=sa.bindparam("b_state"), attempts=sa.bindparam("b_attempts"),
        last_code=sa.bindparam("b_code"), last_status=sa.bindparam("b_status"),
        last_reply=sa.bindparam("b_reply"), message_id=sa.bindparam("b_message_id"),
        next_attempt_at=sa.bindparam("b_next"), sent_at=sa.bindparam("b_sent"),
        variant=sa.bindparam("b_variant"),
        lease_owner=None, lease_expires_at=None, relay=relay, updated_at=now,
        first_attempt_at=sa.func.coalesce(_delivery.c.first_attempt_at, now),
    ))
    events: list[dict[str, Any]] = [{
        "at": now, "kind": o.state, "campaign_id": campaign_id,
        "subscriber_id": o.claimed.subscriber_id, "delivery_id": o.claimed.delivery_id,
        "code": o.code, "status": o.status, "reason": o.reason, "source": "smtp",
        "detail": o.reply[:2000], "data": {"kind": o.kind} if o.kind else {},
    } for o in outcomes]
    with store.engine.begin() as conn:
        conn.execute(update, params)
        conn.execute(_event.insert(), events)


def finish_if_done(store: Store, campaign_id: int) -> bool:
    """Mark the campaign finished when no delivery is left to try; True if it is."""
    with store.engine.begin() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(_delivery).where(
            _delivery.c.campaign_id == campaign_id,
            _delivery.c.state.in_(OPEN_STATES))).scalar_one()
        if left:
            return False
        now = utcnow()
        conn.execute(_campaign.update().where(_campaign.c.id == campaign_id,
                                              _campaign.c.status == "running")
                     .values(status="finished", finished_at=now, updated_at=now))
        return True


COUNT_KEYS = ("total", "queued", "sent", "deferred", "bounced", "failed", "skipped",
              "unsubscribed", "complained")


def campaign_counts(store: Store) -> list[dict[str, Any]]:
    """Per campaign: name, status and delivery counts by state (plus unsubscribes, complaints)."""
    by_state = (sa.select(_delivery.c.campaign_id, _delivery.c.state, sa.func.count())
                .group_by(_delivery.c.campaign_id, _delivery.c.state))
    by_event = (sa.select(_event.c.campaign_id, _event.c.kind, sa.func.count())
                .where(_event.c.kind.in_(("unsubscribed", "complained")))
                .group_by(_event.c.campaign_id, _event.c.kind))
    with store.engine.connect() as conn:
        campaigns = conn.execute(sa.select(_campaign.c.id, _campaign.c.name, _campaign.c.status)
                                 .order_by(_campaign.c.id)).all()
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
