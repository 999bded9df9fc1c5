"""The engine against relays that misbehave on purpose: exact final states, nothing lost.

Every test runs on SQLite and PostgreSQL (the ``store`` fixture), against real
aiosmtpd servers on loopback (``tests/support/badrelay.py``).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dispatcher.config import SendingConfig
from dispatcher.core.backoff import RetryPolicy
from dispatcher.core.campaign import Campaign as Definition
from dispatcher.core.rates import Limits
from dispatcher.delivery import enqueue, prepare_campaign, send_campaign
from dispatcher.delivery.control import retry_failed, set_status
from dispatcher.delivery.engine import SendSummary
from dispatcher.render import Renderer
from dispatcher.smtp.client import Timeouts
from dispatcher.smtp.relay import RelayURL, parse_relay
from dispatcher.store import Store, stats
from dispatcher.store.models import (
    Delivery,
    Event,
    MailingList,
    Membership,
    Subscriber,
    Suppression,
)
from dispatcher.store.rate_tables import rate_slot
from dispatcher.store.subscribers import suppression_hash
from tests.support.badrelay import BadRelay, down_port

DATA = Path(__file__).parent / "data"
SENDING = SendingConfig(domain="news.shop.example", bounce_domain="bounces.shop.example",
                        unsubscribe_url="https://shop.example/u/{token}")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_delivery = Delivery.__table__  # type: ignore[attr-defined]
_list = MailingList.__table__  # type: ignore[attr-defined]
_subscriber = Subscriber.__table__  # type: ignore[attr-defined]
_membership = Membership.__table__  # type: ignore[attr-defined]


def seed(store: Store, emails: list[str], name: str = "spring") -> tuple[int, Renderer]:
    """Subscribers in a list named after the campaign, the campaign, its deliveries queued."""
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        list_id = conn.execute(sa.insert(_list).values(
            name=f"{name}-list", description="", created_at=now).returning(_list.c.id)
        ).scalar_one()
        ids = conn.execute(sa.insert(_subscriber).returning(_subscriber.c.id), [
            {"email": email, "name": "", "attributes": {"first_name": email.split("@")[0]},
             "status": "active", "created_at": now, "updated_at": now} for email in emails
        ]).scalars().all()
        conn.execute(sa.insert(_membership), [
            {"list_id": list_id, "subscriber_id": sid, "status": "subscribed", "created_at": now}
            for sid in ids])
    definition = Definition.model_validate({
        "name": name, "from": {"name": "Shop", "address": "news@shop.example"},
        "subject": "Hi {{ first_name }}",
        "template": {"html": "templates/news.mjml", "text": "templates/news.txt"},
        "audience": {"lists": [f"{name}-list"]}, "variables": {"issue": 7}})
    cid = prepare_campaign(store, definition, source_path=f"{name}.yaml", relay="test")
    enqueue(store, cid, definition)
    renderer = Renderer(definition, root=DATA, sending=SENDING, secret=b"k" * 32,
                        campaign_id=cid)
    return cid, renderer


def send(store: Store, cid: int, renderer: Renderer, relay: RelayURL | list[RelayURL],
         at: datetime = T0, **kw: Any) -> SendSummary:
    kw.setdefault("connections", 2)
    kw.setdefault("timeouts", Timeouts.all(5))
    return asyncio.run(asyncio.wait_for(send_campaign(
        store, cid, renderer, relay, clock=lambda: at, **kw), 60))


def states(store: Store, cid: int) -> dict[str, tuple[str, int, int | None]]:
    """email -> (state, attempts, last_code)."""
    s = Subscriber.__table__  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(s.c.email, _delivery.c.state, _delivery.c.attempts,
                                      _delivery.c.last_code)
                            .join(s, s.c.id == _delivery.c.subscriber_id)
                            .where(_delivery.c.campaign_id == cid)).all()
    return {r.email: (r.state, r.attempts, r.last_code) for r in rows}


def url(relay: BadRelay, query: str = "") -> RelayURL:
    return parse_relay(f"{relay.url}?starttls=off{query}")


def test_reply_codes_become_exact_states_with_retries_until_max_age(store: Store) -> None:
    script = {
        "unknown@x.test": ["550 5.1.1 <unknown@x.test>: user unknown"],
        "later@x.test": ["451 4.3.0 try again", "250 OK"],
        "full@x.test": ["552 5.2.2 mailbox full"],
        "spam@x.test": ["554 5.7.1 message rejected as spam"],
        "grey@x.test": ["450 4.2.0 greylisted"],
    }
    emails = [*script, *(f"ok{i}@x.test" for i in range(15))]
    cid, renderer = seed(store, emails)
    policy = RetryPolicy(first=timedelta(minutes=5), max_age=timedelta(days=3))
    with BadRelay(rcpt=script) as relay:
        first = send(store, cid, renderer, url(relay), policy=policy)
        assert first.outcomes == Counter(sent=15, deferred=3, bounced=2)
        got = states(store, cid)
        assert got["unknown@x.test"] == ("bounced", 1, 550)
        assert got["spam@x.test"] == ("bounced", 1, 554)
        for email in ("later@x.test", "full@x.test", "grey@x.test"):
            assert got[email][:2] == ("deferred", 1)
        # Nothing is due before the backoff: a pass now sends nothing.
        assert sum(send(store, cid, renderer, url(relay), policy=policy).outcomes.values()) == 0
        second = send(store, cid, renderer, url(relay), at=T0 + timedelta(hours=1),
                      policy=policy)
        assert second.outcomes == Counter(sent=1, deferred=2)
        assert states(store, cid)["later@x.test"] == ("sent", 2, 250)
        third = send(store, cid, renderer, url(relay), at=T0 + timedelta(days=3, minutes=1),
                     policy=policy)
        assert third.outcomes == Counter(failed=2) and third.finished
        assert relay.recipients() == Counter({e: 1 for e in emails if e.startswith("ok")}
                                             | {"later@x.test": 1})
    with store.engine.connect() as conn:
        e = Event.__table__  # type: ignore[attr-defined]
        kinds: dict[str, dict[str, str]] = {d: k for d, k in conn.execute(
            sa.select(e.c.detail, e.c.data).where(e.c.kind == "bounced"))}
        reasons = Counter(conn.execute(sa.select(e.c.reason).where(
            e.c.kind.in_(("bounced", "failed")))).scalars())
    assert sorted(k["kind"] for k in kinds.values()) == ["hard", "soft"]
    assert reasons == Counter({"user_unknown": 1, "spam_detected": 1, "expired": 2})


def test_drops_421_and_throttling(store: Store) -> None:
    emails = [f"u{i}@x.test" for i in range(20)]
    cid, renderer = seed(store, emails)
    with BadRelay(drop_data=2, mail=[None, "421 4.7.0 too many messages, slow down"]) as relay:
        first = send(store, cid, renderer, url(relay))
        assert first.outcomes == Counter(sent=17, deferred=3)
        with store.engine.connect() as conn:
            factor = conn.execute(sa.select(rate_slot.c.factor)).scalar()
        assert factor == 0.5  # the relay's 421 4.7.0 halved its pace for every worker
        second = send(store, cid, renderer, url(relay), at=T0 + timedelta(hours=1))
        assert second.outcomes == Counter(sent=3) and second.finished
        # The dropped ones never got a 250: each address arrived exactly once.
        assert relay.recipients() == Counter(dict.fromkeys(emails, 1))


def test_slow_relay_times_out_and_everything_is_deferred(store: Store) -> None:
    cid, renderer = seed(store, ["a@x.test", "b@x.test"])
    with BadRelay(slow_data=2) as relay:
        summary = send(store, cid, renderer, url(relay), connections=2,
                       timeouts=replace(Timeouts.all(5), final_dot=0.3))
    assert summary.outcomes == Counter(deferred=2)
    assert {s for s, _, _ in states(store, cid).values()} == {"deferred"}


def test_tls_auth_and_down_failures_defer_with_the_reason(store: Store) -> None:
    cid, renderer = seed(store, ["a@x.test", "b@x.test", "c@x.test"])
    with BadRelay(tls=True) as tls_relay, BadRelay(users={"news": "right"}) as auth_relay:
        bad = [parse_relay(f"{tls_relay.url}?starttls=required"),
               parse_relay(f"smtp://news:wrong@127.0.0.1:{auth_relay.port}?starttls=off"),
               parse_relay(f"smtp://127.0.0.1:{down_port()}?timeout=2")]
        summary = send(store, cid, renderer, bad)
        assert summary.outcomes == Counter(deferred=3)
        with store.engine.connect() as conn:
            replies = conn.execute(sa.select(_delivery.c.last_reply, _delivery.c.attempts)).all()
        assert all(r.attempts == 1 and r.last_reply.startswith("no relay could take it")
                   for r in replies)
        # Once the relay is configured right, the same deliveries go out.
        good = [parse_relay(f"{tls_relay.url}?starttls=required&verify=false")]
        assert send(store, cid, renderer, good, at=T0 + timedelta(hours=1)).outcomes == Counter(
            sent=3)
        assert tls_relay.recipients() == Counter({"a@x.test": 1, "b@x.test": 1, "c@x.test": 1})


def test_failover_weights_and_quota_spill_over_held_in_the_store(store: Store) -> None:
    emails = [f"u{i}@x.test" for i in range(80)]
    cid, renderer = seed(store, emails)
    with BadRelay() as a, BadRelay() as b, BadRelay() as c:
        pool = [parse_relay(f"smtp://127.0.0.1:{down_port()}?priority=0"),
                url(a, "&priority=1&weight=3&per_day=30"), url(b, "&priority=1&weight=1"),
                url(c, "&priority=2")]
        summary = send(store, cid, renderer, pool, connections=1, batch=40)
        assert summary.outcomes == Counter(sent=80)
        # a: its daily quota (weight 3 would have given it 60), b the rest; c, the third
        # priority, is not needed: a and b have no rate limit, so they are never saturated.
        assert (len(a.received), len(b.received), len(c.received)) == (30, 50, 0)
        # The quota is in the store: a new run (a restart, another worker) finds it used up.
        cid2, renderer2 = seed(store, ["late@x.test"], name="later")
        pool = [url(a, "&per_day=30"), url(b, "&priority=1")]
        assert send(store, cid2, renderer2, pool).outcomes == Counter(sent=1)
        assert (len(a.received), b.recipients()["late@x.test"]) == (30, 1)


def test_unsubscribe_and_suppression_rechecked_at_claim(store: Store) -> None:
    cid, renderer = seed(store, ["stay@x.test", "left@x.test", "blocked@x.test"])
    s = Subscriber.__table__  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        conn.execute(s.update().where(s.c.email == "left@x.test").values(status="unsubscribed"))
        conn.execute(sa.insert(Suppression.__table__).values(  # type: ignore[attr-defined]
            email_hash=suppression_hash("Blocked@X.test"), reason="complained",
            created_at=datetime.now(UTC)))
    with BadRelay() as relay:
        summary = send(store, cid, renderer, url(relay))
        assert relay.recipients() == Counter({"stay@x.test": 1})
    assert summary.outcomes == Counter(sent=1) and summary.finished
    got = states(store, cid)
    assert got["left@x.test"][0] == got["blocked@x.test"][0] == "skipped"


def test_pause_resume_cancel_and_retry_failed(store: Store) -> None:
    emails = [f"u{i}@x.test" for i in range(6)]
    cid, renderer = seed(store, emails)
    with BadRelay(rcpt={"u0@x.test": ["451 4.3.0 later", "451 4.3.0 later", "250 OK"]}) as relay:
        set_status(store, "spring", "pause")
        paused = send(store, cid, renderer, url(relay))
        assert paused.stopped == "paused" and not relay.received
        assert {s for s, _, _ in states(store, cid).values()} == {"queued"}
        set_status(store, "spring", "resume")
        policy = RetryPolicy(max_age=timedelta(minutes=1))
        send(store, cid, renderer, url(relay), policy=policy)
        send(store, cid, renderer, url(relay), policy=policy, at=T0 + timedelta(minutes=2))
        assert states(store, cid)["u0@x.test"][0] == "failed"
        assert retry_failed(store, "spring") == 1
        assert send(store, cid, renderer, url(relay), policy=policy).outcomes == Counter(sent=1)
        assert relay.recipients() == Counter(dict.fromkeys(emails, 1))
    cid2, renderer2 = seed(store, ["late@x.test"], name="later")
    set_status(store, "later", "cancel")
    with BadRelay() as relay:
        cancelled = send(store, cid2, renderer2, url(relay))
        assert cancelled.stopped == "cancelled" and not relay.received
    assert states(store, cid2)["late@x.test"][0] == "skipped"


def test_campaign_rate_is_stricter_than_the_relays(store: Store) -> None:
    cid, renderer = seed(store, [f"u{i}@x.test" for i in range(10)])
    with BadRelay() as relay:
        send(store, cid, renderer, url(relay, "&per_second=1000"),
             limits=Limits(per_minute=4), connections=1)
        assert len(relay.received) == 4
    assert Counter(s for s, _, _ in states(store, cid).values()) == Counter(deferred=6, sent=4)


def test_a_destination_that_says_slow_down_is_suspended_alone(store: Store) -> None:
    emails = ["a@gmail.com", "b@gmail.com", "c@googlemail.com", "d@x.test"]
    cid, renderer = seed(store, emails)
    throttled = {"a@gmail.com": ["450 4.7.28 Our system has detected an unusual rate of mail"]}
    with BadRelay(rcpt=throttled) as relay:
        summary = send(store, cid, renderer, url(relay), connections=1)
        assert relay.recipients() == Counter({"d@x.test": 1})
    assert summary.outcomes == Counter(deferred=3, sent=1)
    got = states(store, cid)
    # b and c share Google's MX group with a: not even tried (no attempt counted).
    assert got["a@gmail.com"] == ("deferred", 1, 450)
    assert got["b@gmail.com"] == got["c@googlemail.com"] == ("deferred", 0, None)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(rate_slot.c.key, rate_slot.c.factor)).one()
    assert (row.key, row.factor) == ("dest:google", 0.5)


def test_rendering_in_a_process_pool(store: Store) -> None:
    emails = [f"p{i}@x.test" for i in range(30)]
    cid, renderer = seed(store, emails)
    factory = functools.partial(Renderer, renderer.campaign, root=DATA, sending=SENDING,
                                secret=b"k" * 32, campaign_id=cid)
    with BadRelay() as relay:
        summary = send(store, cid, renderer, url(relay), render_processes=1,
                       render_factory=factory)
        assert summary.outcomes == Counter(sent=30)
        subjects = {a.rcpt_tos[0]: a.data.split(b"\r\nSubject: ", 1)[1].split(b"\r\n", 1)[0]
                    for a in relay.received}
    assert subjects == {e: f"Hi {e.split('@')[0]}".encode() for e in emails}


def test_a_stop_mid_campaign_gives_back_what_was_leased_and_not_sent(store: Store) -> None:
    emails = [f"s{i}@x.test" for i in range(300)]
    cid, renderer = seed(store, emails)
    stop = asyncio.Event()
    answered: list[str] = []

    def progress(outcome: Any) -> None:
        answered.append(outcome.state)
        if len(answered) == 60:
            stop.set()

    with BadRelay() as relay:
        first = send(store, cid, renderer, url(relay), batch=50, progress=progress, stop=stop)
        got = states(store, cid)
        # The feed leases ahead (two batches) and renders ahead: what it held and did not
        # send is queued again, not left claimed, and nothing answered is lost.
        assert {s for s, _, _ in got.values()} == {"sent", "queued"}
        sent = {e for e, (s, _, _) in got.items() if s == "sent"}
        assert 60 <= len(sent) < 300 and first.outcomes == Counter(sent=len(sent))
        assert relay.recipients() == Counter(dict.fromkeys(sent, 1))
        second = send(store, cid, renderer, url(relay), batch=50)
        assert second.finished and second.outcomes == Counter(sent=300 - len(sent))
        assert relay.recipients() == Counter(dict.fromkeys(emails, 1))


def test_a_running_send_publishes_its_relay_health_for_the_dashboard(store: Store) -> None:
    cid, renderer = seed(store, [f"r{i}@example.com" for i in range(30)])
    seen: list[stats.RelayHealth] = []
    with BadRelay() as relay:
        target = url(relay, "&per_second=10")
        sending = threading.Thread(target=send, args=(store, cid, renderer, target))
        sending.start()
        deadline = time.monotonic() + 20
        while sending.is_alive() and time.monotonic() < deadline:
            seen += [h for h in stats.relay_health(store, datetime.now(UTC))
                     if h.relay == target.display and h.connections]
            time.sleep(0.2)
        sending.join(30)
    assert seen, "no health report while sending"
    # Sessions connect one after the other: a report may catch the first alone.
    assert {(h.health, h.rate_limit) for h in seen} == {("ok", 10.0)}
    assert max(h.connections or 0 for h in seen) == 2
    (after,) = [h for h in stats.relay_health(store, datetime.now(UTC))
                if h.relay == target.display]
    assert after.connections == 0
