"""What a bounce, complaint or unsubscribe does to a subscriber: the one ``apply`` path.

Defaults (all configurable through :class:`Policy`):

* **hard** bounce -> the subscriber is ``bounced`` and the address suppressed at once;
* **soft** bounce -> counted; after ``soft_limit`` (3) counted soft bounces within
  ``soft_days`` (14) days, with no success (a delivery receipt, an open or a click)
  after the first of them, the address is suppressed. Soft bounces that say
  something about *us* rather than the mailbox (blocked, spam verdict,
  authentication, rate limit, policy, network, system, message too large) are
  recorded but never counted: a reputation problem at Gmail must not suppress
  every Gmail subscriber;
* **complaint** -> unsubscribed from every list, ``complained``, suppressed;
* **unsubscribe** -> memberships ``unsubscribed`` (all, or all but the lists the
  subscriber chose to keep); a full unsubscribe also suppresses the address.

Every decision is an event carrying its evidence (code, status, reason, source,
the returned message's key and Message-ID). Whatever removes a subscriber also
skips their deliveries still queued or deferred, so a running campaign stops
mailing them at once. Each returned message is applied once (``feedback_seen``),
in the same transaction as its effects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.core.bounces import Analysis
from dispatcher.core.replies import classify_reply
from dispatcher.store.database import Store
from dispatcher.store.feedback_tables import feedback_seen
from dispatcher.store.models import utcnow
from dispatcher.store.subscribers import suppression_hash
from dispatcher.store.tables import delivery_t, event_t, membership_t, subscriber_t, suppression_t

SENDER_SIDE = frozenset({"blocked", "spam_detected", "auth_failure", "rate_limited", "policy",
                         "network", "system", "message_too_large"})
SUCCESS_KINDS = ("delivered", "opened", "clicked")


@dataclass(frozen=True)
class Policy:
    soft_limit: int = 3
    soft_days: int = 14
    uncounted_reasons: frozenset[str] = SENDER_SIDE


@dataclass(frozen=True)
class Decision:
    """What was done for one recipient of one piece of feedback."""

    action: str  # suppressed | counted | recorded | unsubscribed | duplicate | unknown_recipient
    kind: str
    email: str = ""
    subscriber_id: int | None = None
    reason: str = ""


@dataclass
class _Target:
    subscriber_id: int
    email: str
    campaign_id: int | None
    extra: dict[str, Any] = field(default_factory=dict)


def _claim_key(conn: Connection, key: str | None, source: str, kind: str, now: datetime) -> bool:
    """Record ``key`` as applied; False if it already was (inside the caller's transaction)."""
    if key is None:
        return True
    exists = conn.execute(sa.select(feedback_seen.c.key).where(feedback_seen.c.key == key[:100]))
    if exists.first() is not None:
        return False
    conn.execute(feedback_seen.insert().values(key=key[:100], source=source[:32], kind=kind[:16],
                                               at=now))
    return True


def _targets(conn: Connection, analysis: Analysis) -> tuple[list[_Target], list[str]]:
    if analysis.verified and analysis.subscriber_id is not None:
        row = conn.execute(sa.select(subscriber_t.c.id, subscriber_t.c.email).where(
            subscriber_t.c.id == analysis.subscriber_id)).first()
        if row is not None:
            return [_Target(row.id, row.email, analysis.campaign_id)], []
    found: list[_Target] = []
    missing: list[str] = []
    for address in analysis.recipients:
        row = conn.execute(sa.select(subscriber_t.c.id, subscriber_t.c.email).where(
            sa.func.lower(subscriber_t.c.email) == address.strip().lower())).first()
        if row is None:
            missing.append(address)
        elif all(t.subscriber_id != row.id for t in found):
            found.append(_Target(row.id, row.email, None))
    return found, missing


def _event_row(now: datetime, kind: str, t: _Target, *, source: str, analysis: Analysis | None,
               key: str | None, **data: Any) -> dict[str, Any]:
    evidence: dict[str, Any] = {"recipient": t.email, **data}
    detail = ""
    code = status = reason = None
    if analysis is not None:
        evidence.update({"kind": analysis.kind, "message_id": analysis.message_id,
                         "source_key": key, "feedback_type": analysis.feedback_type})
        detail, code, status, reason = (analysis.diagnostic, analysis.code, analysis.status,
                                        analysis.reason)
    return {"at": now, "kind": kind, "campaign_id": t.campaign_id, "subscriber_id":
            t.subscriber_id, "delivery_id": None, "code": code, "status": status,
            "reason": (reason or data.get("reason") or None), "source": source[:32],
            "detail": (detail or "")[:2000], "data": evidence}


def _skip_pending(conn: Connection, subscriber_id: int, now: datetime) -> int:
    result = conn.execute(delivery_t.update().where(
        delivery_t.c.subscriber_id == subscriber_id,
        delivery_t.c.state.in_(("queued", "deferred"))).values(state="skipped", updated_at=now))
    return int(result.rowcount or 0)


def _suppress(conn: Connection, t: _Target, reason: str, status: str, now: datetime) -> None:
    conn.execute(subscriber_t.update().where(subscriber_t.c.id == t.subscriber_id)
                 .values(status=status, updated_at=now))
    digest = suppression_hash(t.email)
    if conn.execute(sa.select(suppression_t.c.email_hash).where(
            suppression_t.c.email_hash == digest)).first() is None:
        conn.execute(suppression_t.insert().values(email_hash=digest, reason=reason,
                                                   created_at=now))
    _skip_pending(conn, t.subscriber_id, now)


def _soft_count(conn: Connection, subscriber_id: int, policy: Policy, now: datetime) -> int:
    since = now - timedelta(days=policy.soft_days)
    last_success = conn.execute(sa.select(sa.func.max(event_t.c.at)).where(
        event_t.c.subscriber_id == subscriber_id, event_t.c.kind.in_(SUCCESS_KINDS))).scalar()
    if last_success is not None and last_success > since:
        since = last_success
    return int(conn.execute(sa.select(sa.func.count()).select_from(event_t).where(
        event_t.c.subscriber_id == subscriber_id, event_t.c.kind == "bounced",
        event_t.c.at >= since, event_t.c.reason.is_not(None),
        event_t.c.reason.not_in(sorted(policy.uncounted_reasons))),
    ).scalar_one())


def _mark_delivery(conn: Connection, t: _Target, analysis: Analysis, source: str,
                   now: datetime) -> None:
    """A DSN for a message the relay had accepted: that delivery bounced after all.

    Its ``delivery:ID`` key is claimed too, so the SMTP-time sweep leaves it alone.
    """
    if t.campaign_id is None or analysis.delayed:
        return
    delivery_id = conn.execute(sa.select(delivery_t.c.id).where(
        delivery_t.c.campaign_id == t.campaign_id, delivery_t.c.subscriber_id == t.subscriber_id,
        delivery_t.c.state == "sent")).scalar()
    if delivery_id is None:
        return
    conn.execute(delivery_t.update().where(delivery_t.c.id == delivery_id).values(
        state="bounced", last_status=analysis.status, last_code=analysis.code,
        last_reply=analysis.diagnostic[:2000], updated_at=now))
    _claim_key(conn, f"delivery:{delivery_id}", source, analysis.kind, now)


def apply(store: Store, analysis: Analysis, *, source: str, key: str | None = None,
          policy: Policy | None = None, now: datetime | None = None,
          delivery_id: int | None = None) -> list[Decision]:
    """Apply one returned message's verdict; ``key`` (e.g. a digest) makes it apply once.

    ``delivery_id`` names the delivery whose SMTP reply this is: the engine's own
    ``bounced`` event for it is completed with the verdict instead of a second one.
    """
    policy = policy or Policy()
    now = now or utcnow()
    with store.engine.begin() as conn:
        if not _claim_key(conn, key, source, analysis.kind, now):
            return [Decision("duplicate", analysis.kind)]
        targets, missing = _targets(conn, analysis)
        decisions = [Decision("unknown_recipient", analysis.kind, a) for a in missing]
        for t in targets:
            decisions.append(_apply_one(conn, t, analysis, source, key, policy, now,
                                        delivery_id))
        return decisions


def _record_bounce(conn: Connection, t: _Target, analysis: Analysis, source: str,
                   key: str | None, now: datetime, delivery_id: int | None) -> None:
    row = _event_row(now, "bounced", t, source=source, analysis=analysis, key=key)
    if delivery_id is not None:
        done = conn.execute(event_t.update().where(
            event_t.c.delivery_id == delivery_id, event_t.c.kind == "bounced").values(
            reason=row["reason"], status=row["status"], data=row["data"]))
        if done.rowcount:
            return
        row["delivery_id"] = delivery_id
    conn.execute(event_t.insert(), [row])


def _apply_one(conn: Connection, t: _Target, analysis: Analysis, source: str, key: str | None,
               policy: Policy, now: datetime, delivery_id: int | None) -> Decision:
    kind = analysis.kind
    if kind == "complaint":
        conn.execute(event_t.insert(), [_event_row(now, "complained", t, source=source,
                                                   analysis=analysis, key=key)])
        conn.execute(membership_t.update().where(membership_t.c.subscriber_id == t.subscriber_id)
                     .values(status="unsubscribed"))
        _suppress(conn, t, "complained", "complained", now)
        conn.execute(event_t.insert(), [_event_row(now, "suppressed", t, source=source,
                                                   analysis=analysis, key=key)])
        return Decision("suppressed", kind, t.email, t.subscriber_id, "complaint")
    if kind in ("autoreply", "delivered", "not_bounce"):
        if kind != "not_bounce":
            conn.execute(event_t.insert(), [_event_row(now, kind, t, source=source,
                                                       analysis=analysis, key=key)])
        return Decision("recorded", kind, t.email, t.subscriber_id, analysis.reason)
    _record_bounce(conn, t, analysis, source, key, now, delivery_id)
    _mark_delivery(conn, t, analysis, source, now)
    if kind == "hard":
        _suppress(conn, t, "bounced", "bounced", now)
        conn.execute(event_t.insert(), [_event_row(now, "suppressed", t, source=source,
                                                   analysis=analysis, key=key, rule="hard")])
        return Decision("suppressed", kind, t.email, t.subscriber_id, analysis.reason)
    if analysis.delayed or analysis.reason in policy.uncounted_reasons:
        return Decision("recorded", kind, t.email, t.subscriber_id, analysis.reason)
    count = _soft_count(conn, t.subscriber_id, policy, now)
    if count >= policy.soft_limit:
        _suppress(conn, t, "bounced", "bounced", now)
        conn.execute(event_t.insert(), [_event_row(
            now, "suppressed", t, source=source, analysis=analysis, key=key, rule="soft",
            soft_bounces=count, window_days=policy.soft_days)])
        return Decision("suppressed", kind, t.email, t.subscriber_id, analysis.reason)
    return Decision("counted", kind, t.email, t.subscriber_id, analysis.reason)


def sweep_smtp_bounces(store: Store, *, policy: Policy | None = None,
                       now: datetime | None = None) -> list[Decision]:
    """Apply the policy to 5xx replies received while sending (deliveries in state ``bounced``).

    The delivery engine records the relay's reply; this classifies it with
    :func:`classify_reply` and applies it once per delivery (key ``delivery:ID``).
    Safe to run after every send and from housekeeping.
    """
    now = now or utcnow()
    seen = sa.select(feedback_seen.c.key).where(
        feedback_seen.c.key == sa.literal("delivery:") + sa.cast(delivery_t.c.id, sa.String))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(
            delivery_t.c.id, delivery_t.c.campaign_id, delivery_t.c.subscriber_id,
            delivery_t.c.last_code, delivery_t.c.last_reply, subscriber_t.c.email)
            .join(subscriber_t, subscriber_t.c.id == delivery_t.c.subscriber_id)
            .where(delivery_t.c.state == "bounced", delivery_t.c.last_code >= 500,
                   ~sa.exists(seen))).all()
    decisions: list[Decision] = []
    for row in rows:
        reply = classify_reply(int(row.last_code), row.last_reply or "")
        analysis = Analysis(reply.kind, reply.reason, reply.status, reply.code,
                            (row.email,), source="smtp", campaign_id=row.campaign_id,
                            subscriber_id=row.subscriber_id, verified=True,
                            diagnostic=row.last_reply or "")
        decisions.extend(apply(store, analysis, source="smtp", key=f"delivery:{row.id}",
                               policy=policy, now=now, delivery_id=row.id))
    return decisions


def unsubscribe(store: Store, subscriber_id: int, *, campaign_id: int | None, source: str,
                keep_lists: Iterable[int] | None = None, key: str | None = None,
                now: datetime | None = None) -> bool:
    """Unsubscribe from every list but ``keep_lists``; False if ``key`` was already used.

    Keeping no list is a full unsubscribe: the subscriber becomes ``unsubscribed``,
    the address is suppressed, and their pending deliveries are skipped.
    """
    now = now or utcnow()
    keep = sorted(set(keep_lists or ()))
    with store.engine.begin() as conn:
        row = conn.execute(sa.select(subscriber_t.c.id, subscriber_t.c.email).where(
            subscriber_t.c.id == subscriber_id)).first()
        if row is None or not _claim_key(conn, key, source, "unsubscribed", now):
            return False
        t = _Target(row.id, row.email, campaign_id)
        statement = membership_t.update().where(membership_t.c.subscriber_id == row.id)
        if keep:
            statement = statement.where(membership_t.c.list_id.not_in(keep))
        conn.execute(statement.values(status="unsubscribed"))
        if not keep:
            _suppress(conn, t, "unsubscribed", "unsubscribed", now)
        conn.execute(event_t.insert(), [_event_row(now, "unsubscribed", t, source=source,
                                                   analysis=None, key=key, kept_lists=keep)])
        return True
