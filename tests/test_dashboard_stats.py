"""store/stats.py: incremental rollups equal a full count, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from dispatcher.delivery.queue import campaign_counts
from dispatcher.store import Store, stats
from dispatcher.store.models import Event
from tests.test_dashboard_support import (
    CONNECTION,
    NOW,
    SENT,
    UNKNOWN_USER,
    add_campaign,
    add_recipients,
    prepare,
    send,
)


def _by_name(store: Store) -> dict[str, stats.CampaignRow]:
    return {c.name: c for c in stats.campaigns(store, NOW)}


def test_rollup_counts_match_a_full_count_of_the_deliveries(store: Store) -> None:
    prepare(store)
    result = stats.rollup(store, NOW)
    assert result.deliveries == 70
    assert result.events == 28 + 13 + 10 + 2
    rows = _by_name(store)
    spring = rows["spring-sale"]
    assert (spring.total, spring.queued, spring.sent, spring.deferred, spring.bounced,
            spring.failed, spring.unsubscribed) == (60, 24, 30, 1, 5, 0, 1)
    assert rows["autumn-news"].complained == 1
    assert rows["winter-teaser"].total == 0
    oracle = {c["name"]: c for c in campaign_counts(store)}
    for name, row in rows.items():
        for key in ("total", "sent", "deferred", "bounced", "failed", "unsubscribed",
                    "complained"):
            assert getattr(row, key) == oracle[name][key], (name, key)


def test_rollup_is_incremental_and_idempotent(store: Store) -> None:
    ids = prepare(store)
    stats.rollup(store, NOW)
    assert stats.rollup(store, NOW) == stats.RollupResult(0, 0)
    send(store, ids.spring, [SENT] * 4, relay="smtp://relay-a:25", at=NOW)
    assert stats.rollup(store, NOW) == stats.RollupResult(0, 4)
    spring = _by_name(store)["spring-sale"]
    assert (spring.sent, spring.queued, spring.deferred) == (34, 21, 0)  # deferral retried
    before = _by_name(store)
    stats.rebuild(store, NOW)
    assert _by_name(store) == before


def test_rate_eta_and_progress(store: Store) -> None:
    prepare(store)
    stats.rollup(store, NOW)
    spring = _by_name(store)["spring-sale"]
    # 41 outcomes in the last minute's buckets -> 41/60 per second
    assert spring.rate == 41 / 60
    assert spring.eta == timedelta(seconds=round(24 / (41 / 60)))
    assert spring.progress == 35 / 60
    assert _by_name(store)["autumn-news"].eta is None


def test_throughput_series_per_relay_moves_with_new_events(store: Store) -> None:
    ids = prepare(store)
    stats.rollup(store, NOW)
    series = stats.throughput(store, NOW, minutes=5)
    assert len(series.buckets) == 30
    assert set(series.per_relay) == {"smtp://relay-a:25", "smtp://relay-b:25"}
    assert series.per_relay["smtp://relay-a:25"][-5] == 28 / 10
    assert series.per_relay["smtp://relay-a:25"][-3] == 13 / 10
    assert series.per_relay["smtp://relay-b:25"][-18] == 10 / 10
    send(store, ids.spring, [SENT] * 7, relay="smtp://relay-a:25", at=NOW)
    stats.rollup(store, NOW)
    later = stats.throughput(store, NOW + timedelta(seconds=10), minutes=5)
    assert later.total[-1] == 7 / 10


def test_relay_health_domains_feed_and_detail(store: Store) -> None:
    ids = prepare(store)
    stats.rollup(store, NOW)
    relays = {r.relay: r for r in stats.relay_health(store, NOW)}
    a = relays["smtp://relay-a:25"]
    assert (a.sent, a.errors, a.error_streak) == (30, 1, 1)  # the refused connection; 421s defer
    assert a.health == "degraded" and a.last_error == CONNECTION[2]
    assert relays["smtp://relay-b:25"].health == "idle"
    stats.report_relay(store, "smtp://relay-a:25", connections=4, rate_limit=50.0,
                       state="failover", now=NOW)
    a = {r.relay: r for r in stats.relay_health(store, NOW)}["smtp://relay-a:25"]
    assert (a.connections, a.rate_limit, a.health) == (4, 50.0, "failover")

    domains = {d.domain: d for d in stats.top_domains(store, NOW)}
    assert list(domains)[:2] == ["gmail.com", "example.org"]
    gmail = domains["gmail.com"]
    assert (gmail.sent, gmail.deferred, gmail.bounced, gmail.backoff) == (27, 5, 3, True)
    assert gmail.bounce_rate == 3 / 30
    assert domains["example.org"].bounced == 3  # two mailbox-full here, one user unknown in autumn

    feed = stats.recent_events(store, limit=5)
    assert [f.kind for f in feed[:2]] == ["complained", "unsubscribed"]
    assert [f.kind for f in stats.recent_events(store, kinds=("complained",))] == ["complained"]

    detail = stats.campaign_detail(store, ids.spring, NOW)
    assert detail is not None
    assert detail.states == {"queued": 24, "sent": 30, "deferred": 1, "bounced": 5,
                             "failed": 0, "skipped": 0}
    assert ("gmail.com", "5.1.1", 3) in detail.bounce_reasons
    assert ("example.org", "5.2.2", 2) in detail.bounce_reasons
    assert detail.last_errors[0].detail == CONNECTION[2]
    # Recipients alternate A/B in id order; which of them were sent decides the split.
    assert {v.name: v.counts.get("sent", 0) for v in detail.variants} == {"A": 16, "B": 14}
    assert sum(v.counts.get("bounced", 0) for v in detail.variants) == 5
    assert detail.schedule["at"] == "2026-03-20T09:00:00+01:00"
    assert detail.rate_limits == {"per_second": 50}
    assert stats.campaign_detail(store, 9999, NOW) is None


def test_requeued_failures_move_back_to_queued(store: Store) -> None:
    cid = add_campaign(store, "retry")
    add_recipients(store, cid, ["a@x.org", "b@x.org"])
    send(store, cid, [("failed", None, "template error"), SENT], relay="r", at=NOW)
    with store.engine.begin() as conn:
        failed = conn.execute(sa.text("SELECT id FROM delivery WHERE state = 'failed'")).scalar()
        conn.execute(Event.__table__.insert().values(  # type: ignore[attr-defined]
            at=NOW, kind="requeued", campaign_id=cid, delivery_id=failed, source="cli",
            detail="", data={}))
        conn.execute(sa.text("UPDATE delivery SET state = 'queued' WHERE id = :i"),
                     {"i": failed})
    stats.rollup(store, NOW)
    row = _by_name(store)["retry"]
    assert (row.queued, row.failed, row.sent) == (1, 0, 1)
    send(store, cid, [UNKNOWN_USER], relay="r", at=NOW)
    stats.rollup(store, NOW)
    row = _by_name(store)["retry"]
    assert (row.queued, row.bounced, row.sent, row.total) == (0, 1, 1, 2)


def test_a_missing_id_is_waited_for_then_skipped(store: Store) -> None:
    cid = add_campaign(store, "gaps")
    add_recipients(store, cid, ["a@x.org", "b@x.org", "c@x.org"])
    send(store, cid, [SENT, SENT, SENT], relay="r", at=NOW)
    with store.engine.begin() as conn:
        ids = sorted(conn.execute(sa.text("SELECT id FROM event")).scalars())
        # Pretend the middle event's transaction has not committed yet.
        row = dict(conn.execute(sa.select(Event.__table__).where(  # type: ignore[attr-defined]
            Event.__table__.c.id == ids[1])).mappings().one())  # type: ignore[attr-defined]
        conn.execute(sa.text("DELETE FROM event WHERE id = :i"), {"i": ids[1]})
    assert stats.rollup(store, NOW).events == 1
    assert stats.rollup(store, NOW + timedelta(seconds=1)).events == 0
    with store.engine.begin() as conn:
        conn.execute(Event.__table__.insert().values(**row))  # type: ignore[attr-defined]
    assert stats.rollup(store, NOW + timedelta(seconds=2)).events == 2
    assert _by_name(store)["gaps"].sent == 3

    send_more = add_campaign(store, "gaps-2")
    add_recipients(store, send_more, ["d@x.org", "e@x.org"])
    send(store, send_more, [SENT, SENT], relay="r", at=NOW)
    with store.engine.begin() as conn:
        first = min(conn.execute(sa.text(
            "SELECT id FROM event WHERE campaign_id = :c"), {"c": send_more}).scalars())
        conn.execute(sa.text("DELETE FROM event WHERE id = :i"), {"i": first})  # rolled back
    assert stats.rollup(store, NOW).events == 0
    assert stats.rollup(store, NOW + stats.GAP_GRACE).events == 1
    # The campaign was new, so its states were counted from its deliveries (both sent).
    assert _by_name(store)["gaps-2"].sent == 2


def test_control_changes_without_events_are_recounted(store: Store) -> None:
    """The engine's cancel and retry-failed move deliveries without an event each."""
    from dispatcher.delivery.control import retry_failed, set_status

    ids = prepare(store)
    stats.rollup(store, NOW)
    cid = add_campaign(store, "retry-me")
    add_recipients(store, cid, ["a@x.org", "b@x.org", "c@x.org"])
    send(store, cid, [("failed", None, "template error"), SENT], relay="r", at=NOW)
    stats.rollup(store, NOW)
    assert retry_failed(store, "retry-me") == 1
    stats.rollup(store, NOW)
    row = _by_name(store)["retry-me"]
    assert (row.queued, row.failed, row.sent) == (2, 0, 1)
    send(store, cid, [SENT, UNKNOWN_USER], relay="r", at=NOW)
    stats.rollup(store, NOW)
    row = _by_name(store)["retry-me"]
    assert (row.queued, row.failed, row.sent, row.bounced) == (0, 0, 2, 1)

    set_status(store, "spring-sale", "cancel")
    stats.rollup(store, NOW)
    oracle = {c["name"]: c for c in campaign_counts(store)}
    for name, row in _by_name(store).items():
        for key in ("total", "queued", "sent", "deferred", "bounced", "failed", "skipped"):
            assert getattr(row, key) == oracle[name][key], (name, key)
    assert _by_name(store)["spring-sale"].skipped == 25
    assert ids.spring


def test_deliveries_rolled_in_several_steps_are_counted_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A campaign first seen mid-enqueue: the recount covers only deliveries rolled so far."""
    from dispatcher.store import stats as stats_module

    monkeypatch.setattr(stats_module, "DELIVERY_BATCH", 4)
    monkeypatch.setattr(stats_module, "EVENT_BATCH", 3)
    cid = add_campaign(store, "steps")
    add_recipients(store, cid, [f"u{i}@x.org" for i in range(10)])
    send(store, cid, [SENT] * 6 + [UNKNOWN_USER] * 2 + [CONNECTION] * 2, relay="r", at=NOW)
    send(store, cid, [SENT], relay="r", at=NOW + timedelta(minutes=1))  # a deferral retried
    for _ in range(12):
        stats.rollup(store, NOW)
    row = _by_name(store)["steps"]
    assert (row.total, row.queued, row.sent, row.bounced, row.deferred) == (10, 0, 7, 2, 1)
