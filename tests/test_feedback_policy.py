"""The suppression policy on SQLite and PostgreSQL: bounces, complaints, unsubscribes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dispatcher.core import verp
from dispatcher.core.bounces import Analysis, analyze
from dispatcher.feedback.policy import Policy, apply, sweep_smtp_bounces, unsubscribe
from dispatcher.store import Store
from dispatcher.store.models import (
    Campaign,
    Delivery,
    Event,
    MailingList,
    Membership,
    Subscriber,
    Suppression,
)
from dispatcher.store.subscribers import suppression_hash

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def seed(store: Store, emails: list[str]) -> tuple[int, dict[str, int], dict[str, int]]:
    """A campaign, two lists, subscribers on both, each with a sent and a queued delivery."""
    with store.engine.begin() as conn:
        cid = conn.execute(sa.insert(Campaign).values(
            name="c1", definition={}, status="running", relay="", source_path="",
            created_at=T0, updated_at=T0).returning(Campaign.id)).scalar_one()
        cid2 = conn.execute(sa.insert(Campaign).values(
            name="c2", definition={}, status="running", relay="", source_path="",
            created_at=T0, updated_at=T0).returning(Campaign.id)).scalar_one()
        lists = {name: conn.execute(sa.insert(MailingList).values(
            name=name, description="", created_at=T0).returning(MailingList.id)).scalar_one()
            for name in ("weekly", "offers")}
        ids = {}
        for email in emails:
            sid = conn.execute(sa.insert(Subscriber).values(
                email=email, name="", attributes={}, status="active", created_at=T0,
                updated_at=T0).returning(Subscriber.id)).scalar_one()
            ids[email] = sid
            for lid in lists.values():
                conn.execute(sa.insert(Membership).values(list_id=lid, subscriber_id=sid,
                                                          status="subscribed", created_at=T0))
            conn.execute(sa.insert(Delivery).values(
                campaign_id=cid, subscriber_id=sid, domain=email.split("@")[1], state="sent",
                attempts=1, updated_at=T0))
            conn.execute(sa.insert(Delivery).values(
                campaign_id=cid2, subscriber_id=sid, domain=email.split("@")[1], state="queued",
                attempts=0, updated_at=T0))
    return cid, ids, lists


def dsn(store: Store, cid: int, sid: int, rcpt: str, status: str, diag: str) -> bytes:
    ret = verp.address(store.secret(), cid, sid, prefix="bounces", domain="bounces.example.com")
    return (
        f"From: MAILER-DAEMON@mx.example.net\nTo: {ret}\nSubject: Undelivered Mail Returned to "
        f"Sender\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status;"
        f" boundary=B\n\n--B\nContent-Type: text/plain\n\nSorry.\n\n--B\nContent-Type: "
        f"message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\nFinal-Recipient: "
        f"rfc822; {rcpt}\nAction: failed\nStatus: {status}\nDiagnostic-Code: smtp; {diag}\n\n"
        f"--B\nContent-Type: text/rfc822-headers\n\nReturn-Path: <{ret}>\nTo: {rcpt}\n"
        f"Message-ID: <{cid}.{sid}.abc@news.example.com>\nSubject: Hi\n\n--B--\n"
    ).encode()


def events(store: Store, sid: int) -> list[tuple[str, Any]]:
    with store.engine.connect() as conn:
        return [(r.kind, r.reason) for r in conn.execute(
            sa.select(Event.kind, Event.reason).where(Event.subscriber_id == sid)
            .order_by(Event.id))]


def status_of(store: Store, sid: int) -> tuple[str, list[str], list[str]]:
    with store.engine.connect() as conn:
        status = conn.execute(sa.select(Subscriber.status).where(Subscriber.id == sid)).scalar()
        memberships = sorted(conn.execute(sa.select(Membership.status).where(
            Membership.subscriber_id == sid)).scalars())
        deliveries = sorted(conn.execute(sa.select(Delivery.state).where(
            Delivery.subscriber_id == sid)).scalars())
    return str(status), memberships, deliveries


def suppressed(store: Store) -> dict[str, str]:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(Suppression.email_hash, Suppression.reason)).all())


def test_hard_bounce_suppresses_at_once_and_applies_once(store: Store) -> None:
    cid, ids, _ = seed(store, ["gone@example.net", "stays@example.net"])
    sid = ids["gone@example.net"]
    raw = dsn(store, cid, sid, "gone@example.net", "5.1.1", "550 5.1.1 <gone@example.net>: "
              "Recipient address rejected: User unknown in virtual mailbox table")
    analysis = analyze(raw, secret=store.secret())
    assert (analysis.kind, analysis.campaign_id, analysis.subscriber_id, analysis.verified) == (
        "hard", cid, sid, True)
    decisions = apply(store, analysis, source="maildir", key="msg:1", now=T0)
    assert [(d.action, d.email) for d in decisions] == [("suppressed", "gone@example.net")]
    assert status_of(store, sid) == ("bounced", ["subscribed", "subscribed"],
                                     ["bounced", "skipped"])
    assert events(store, sid) == [("bounced", "user_unknown"), ("suppressed", "user_unknown")]
    assert suppressed(store) == {suppression_hash("gone@example.net"): "bounced"}
    with store.engine.connect() as conn:
        ev = conn.execute(sa.select(Event).where(Event.kind == "bounced")).one()
    assert (ev.code, ev.status, ev.source, ev.campaign_id) == (550, "5.1.1", "maildir", cid)
    assert ev.data["message_id"] == f"<{cid}.{sid}.abc@news.example.com>"
    assert ev.data["source_key"] == "msg:1"
    # The same message again (a mailbox re-read after a crash) changes nothing.
    assert [d.action for d in apply(store, analysis, source="maildir", key="msg:1")] == [
        "duplicate"]
    assert len(events(store, sid)) == 2
    assert status_of(store, ids["stays@example.net"])[0] == "active"


def soft(sid: int, reason: str = "mailbox_full", email: str = "full@example.net") -> Analysis:
    return Analysis("soft", reason, "4.2.2", 452, (email,), campaign_id=None,
                    subscriber_id=sid, verified=True)


def test_soft_bounces_suppress_after_the_limit_unless_a_success_intervenes(store: Store) -> None:
    _, ids, _ = seed(store, ["full@example.net", "other@example.net"])
    sid = ids["full@example.net"]
    policy = Policy(soft_limit=3, soft_days=10)
    actions = [apply(store, soft(sid), source="t", key=f"k{i}", policy=policy,
                     now=T0 + timedelta(days=i))[0].action for i in range(2)]
    assert actions == ["counted", "counted"]
    # An open proves the mailbox works: counting starts again after it.
    with store.engine.begin() as conn:
        conn.execute(sa.insert(Event).values(at=T0 + timedelta(days=2), kind="opened",
                                             subscriber_id=sid, source="http", detail="",
                                             data={}))
    later = [apply(store, soft(sid), source="t", key=f"k{i}", policy=policy,
                   now=T0 + timedelta(days=i))[0].action for i in (3, 4, 5)]
    assert later == ["counted", "counted", "suppressed"]
    assert status_of(store, sid)[0] == "bounced"
    with store.engine.connect() as conn:
        data = conn.execute(sa.select(Event.data).where(Event.kind == "suppressed")).scalar_one()
    assert (data["rule"], data["soft_bounces"], data["window_days"]) == ("soft", 3, 10)

    other = ids["other@example.net"]
    # Outside the window the old ones no longer count.
    spaced = [apply(store, soft(other, email="other@example.net"), source="t", key=f"o{i}",
                    policy=policy, now=T0 + timedelta(days=11 * i))[0].action for i in range(4)]
    assert spaced == ["counted"] * 4
    # A block of *our* IP is recorded but never counted against the subscriber.
    blocked = [apply(store, soft(other, "blocked", "other@example.net"), source="t",
                     key=f"b{i}", policy=policy, now=T0 + timedelta(days=50))[0].action
               for i in range(5)]
    assert blocked == ["recorded"] * 5
    assert status_of(store, other)[0] == "active"


def test_complaint_unsubscribes_everywhere_and_suppresses(store: Store) -> None:
    _cid, ids, _ = seed(store, ["angry@example.com"])
    sid = ids["angry@example.com"]
    analysis = Analysis("complaint", "complaint", None, None, ("angry@example.com",),
                        feedback_type="abuse")
    assert [d.action for d in apply(store, analysis, source="arf", key="c")] == ["suppressed"]
    assert status_of(store, sid) == ("complained", ["unsubscribed", "unsubscribed"],
                                     ["sent", "skipped"])
    assert [k for k, _ in events(store, sid)] == ["complained", "suppressed"]
    assert suppressed(store) == {suppression_hash("angry@example.com"): "complained"}


def test_autoreply_and_unknown_recipients_change_nothing(store: Store) -> None:
    _, ids, _ = seed(store, ["away@example.com"])
    sid = ids["away@example.com"]
    auto = Analysis("autoreply", "none", None, None, ("away@example.com",))
    assert [d.action for d in apply(store, auto, source="t", key="a")] == ["recorded"]
    stranger = Analysis("hard", "user_unknown", "5.1.1", 550, ("nobody@else.example",))
    assert [(d.action, d.email) for d in apply(store, stranger, source="t", key="s")] == [
        ("unknown_recipient", "nobody@else.example")]
    assert status_of(store, sid)[0] == "active"
    assert events(store, sid) == [("autoreply", "none")]
    assert suppressed(store) == {}


def test_unsubscribe_keeping_some_lists_then_everything(store: Store) -> None:
    cid, ids, lists = seed(store, ["reader@example.com"])
    sid = ids["reader@example.com"]
    assert unsubscribe(store, sid, campaign_id=cid, source="http", keep_lists=[lists["weekly"]])
    with store.engine.connect() as conn:
        by_list = dict(conn.execute(sa.select(Membership.list_id, Membership.status).where(
            Membership.subscriber_id == sid)).all())
    assert by_list == {lists["weekly"]: "subscribed", lists["offers"]: "unsubscribed"}
    assert status_of(store, sid)[0] == "active" and suppressed(store) == {}
    assert unsubscribe(store, sid, campaign_id=cid, source="one-click", key="unsub:t")
    assert not unsubscribe(store, sid, campaign_id=cid, source="one-click", key="unsub:t")
    assert status_of(store, sid) == ("unsubscribed", ["unsubscribed", "unsubscribed"],
                                     ["sent", "skipped"])
    assert suppressed(store) == {suppression_hash("reader@example.com"): "unsubscribed"}
    assert [k for k, _ in events(store, sid)] == ["unsubscribed", "unsubscribed"]


def test_sweep_applies_smtp_time_bounces_once(store: Store) -> None:
    cid, ids, _ = seed(store, ["u1@example.org", "full@example.org", "ok@example.org"])
    replies = {"u1@example.org": (550, "5.1.1 <u1@example.org>: Recipient address rejected: "
                                       "User unknown"),
               "full@example.org": (552, "5.2.2 Mailbox full")}
    with store.engine.begin() as conn:
        for email, (code, text) in replies.items():
            did = conn.execute(sa.update(Delivery).where(
                Delivery.subscriber_id == ids[email], Delivery.campaign_id == cid).values(
                state="bounced", last_code=code, last_reply=text).returning(Delivery.id)
            ).scalar_one()
            conn.execute(sa.insert(Event).values(  # what the engine writes
                at=T0, kind="bounced", campaign_id=cid, subscriber_id=ids[email],
                delivery_id=did, code=code, status=None, reason=None, source="smtp",
                detail=text, data={}))
    decisions = sweep_smtp_bounces(store, now=T0)
    assert sorted((d.email, d.action) for d in decisions) == [
        ("full@example.org", "counted"), ("u1@example.org", "suppressed")]
    assert sweep_smtp_bounces(store, now=T0) == []
    assert events(store, ids["u1@example.org"]) == [("bounced", "user_unknown"),
                                                    ("suppressed", "user_unknown")]
    assert events(store, ids["full@example.org"]) == [("bounced", "mailbox_full")]
    assert status_of(store, ids["ok@example.org"])[0] == "active"
