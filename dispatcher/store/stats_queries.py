"""Reading the rollups: plain dataclasses for the dashboard and ``dispatcher status``.

Every query reads the small ``stats_*`` tables and the campaign table, never
the delivery table. Import them from :mod:`dispatcher.store.stats`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dispatcher.store import stats_tables as t
from dispatcher.store.database import Store
from dispatcher.store.tables import campaign_t

BUCKET_SECONDS = 10
UNKNOWN_RELAY = "(relay not recorded)"  # outcomes written without their relay's name
RATE_WINDOW = timedelta(seconds=60)
STATES = ("queued", "sent", "deferred", "bounced", "failed", "skipped")
EVENT_COUNTS = ("unsubscribed", "complained", "opened", "clicked")


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    status: str
    relay: str
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    total: int = 0
    queued: int = 0
    sent: int = 0
    deferred: int = 0
    bounced: int = 0
    failed: int = 0
    skipped: int = 0
    unsubscribed: int = 0
    complained: int = 0
    opened: int = 0
    clicked: int = 0
    rate: float = 0.0  # SMTP outcomes per second over the last minute
    eta: timedelta | None = None  # until the queue is empty at that rate (deferrals wait)

    @property
    def done(self) -> int:
        return self.sent + self.bounced + self.failed + self.skipped

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 0.0

    def counts(self) -> dict[str, int]:
        """The JSON view ``dispatcher status --json`` prints."""
        return {k: getattr(self, k) for k in ("total", *STATES, *EVENT_COUNTS)}


@dataclass(frozen=True)
class Throughput:
    """Messages per second in consecutive buckets (oldest first), per relay and in total."""

    buckets: list[datetime]
    per_relay: dict[str, list[float]]
    total: list[float]


@dataclass(frozen=True)
class RelayHealth:
    relay: str
    health: str  # ok | degraded | down | idle, or the state an engine reported
    rate: float
    rate_limit: float | None
    connections: int | None
    sent: int
    errors: int
    error_streak: int
    last_error: str | None
    last_error_at: datetime | None
    last_ok_at: datetime | None


@dataclass(frozen=True)
class DomainRow:
    domain: str
    sent: int
    deferred: int
    bounced: int
    failed: int
    complained: int
    backoff: bool  # deferred within the last five minutes: receivers are pushing back
    last_reply: str | None

    @property
    def bounce_rate(self) -> float:
        tried = self.sent + self.bounced
        return self.bounced / tried if tried else 0.0


@dataclass(frozen=True)
class FeedRow:
    event_id: int
    at: datetime
    campaign_id: int | None
    kind: str
    domain: str
    relay: str
    code: int | None
    status: str | None
    reason: str | None
    detail: str


@dataclass(frozen=True)
class VariantRow:
    """An A/B variant's results: events by kind (sent, bounced, opened, clicked ...)."""

    name: str
    percent: float | None
    counts: dict[str, int]


@dataclass(frozen=True)
class CampaignDetail:
    campaign: CampaignRow
    states: dict[str, int]
    bounce_reasons: list[tuple[str, str, int]]  # domain, reason, count
    last_errors: list[FeedRow]
    variants: list[VariantRow]
    domains: list[DomainRow]
    schedule: dict[str, Any] = field(default_factory=dict)
    rate_limits: dict[str, Any] = field(default_factory=dict)


def _floor(now: datetime) -> datetime:
    return now.replace(second=now.second - now.second % BUCKET_SECONDS, microsecond=0)


def _rates(conn: Connection, column: Any, now: datetime) -> dict[Any, float]:
    end = _floor(now)
    tp = t.throughput.c
    rows = conn.execute(
        sa.select(column, sa.func.sum(tp.sent + tp.deferred + tp.bounced + tp.failed))
        .where(tp.bucket >= end - RATE_WINDOW, tp.bucket < end).group_by(column)).all()
    return {key: float(n) / RATE_WINDOW.total_seconds() for key, n in rows}


def _campaign_rows(conn: Connection, now: datetime, where: Any = None) -> list[CampaignRow]:
    select = sa.select(campaign_t.c.id, campaign_t.c.name, campaign_t.c.status, campaign_t.c.relay,
                       campaign_t.c.scheduled_at, campaign_t.c.started_at,
                       campaign_t.c.finished_at).order_by(campaign_t.c.id)
    if where is not None:
        select = select.where(where)
    base = conn.execute(select).all()
    ids = [b.id for b in base]
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cs, ce = t.campaign_state.c, t.campaign_event.c
    for cid, state, n in conn.execute(
            sa.select(cs.campaign_id, cs.state, sa.func.sum(cs.count))
            .where(cs.campaign_id.in_(ids)).group_by(cs.campaign_id, cs.state)):
        counts[cid][state] += int(n)
    for cid, kind, n in conn.execute(
            sa.select(ce.campaign_id, ce.kind, sa.func.sum(ce.count))
            .where(ce.campaign_id.in_(ids), ce.kind.in_(EVENT_COUNTS))
            .group_by(ce.campaign_id, ce.kind)):
        counts[cid][kind] += int(n)
    rates = _rates(conn, t.throughput.c.campaign_id, now)
    rows = []
    for b in base:
        c = counts[b.id]
        rate = rates.get(b.id, 0.0)
        # Deferred deliveries wait for their retry time, not for the rate: not in the ETA.
        left = c["queued"]
        eta = (timedelta(seconds=round(left / rate))
               if rate > 0 and left and b.status == "running" else None)
        rows.append(CampaignRow(
            b.id, b.name, b.status, b.relay, b.scheduled_at, b.started_at, b.finished_at,
            total=sum(c[s] for s in STATES), **{k: c[k] for k in (*STATES, *EVENT_COUNTS)},
            rate=rate, eta=eta))
    return rows


def campaigns(store: Store, now: datetime) -> list[CampaignRow]:
    """Every campaign with its counts, current rate and ETA, oldest first."""
    with store.engine.connect() as conn:
        return _campaign_rows(conn, now)


def throughput(store: Store, now: datetime, *, minutes: int = 10) -> Throughput:
    """SMTP outcomes per second in each bucket of the last ``minutes`` (current one excluded)."""
    end = _floor(now)
    count = minutes * 60 // BUCKET_SECONDS
    buckets = [end - timedelta(seconds=BUCKET_SECONDS * i) for i in range(count, 0, -1)]
    index = {b: i for i, b in enumerate(buckets)}
    tp = t.throughput.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(tp.bucket, tp.relay, sa.func.sum(tp.sent + tp.deferred + tp.bounced
                                                       + tp.failed))
            .where(tp.bucket >= buckets[0], tp.bucket < end)
            .group_by(tp.bucket, tp.relay)).all()
    per_relay: dict[str, list[float]] = {}
    total = [0.0] * count
    for bucket, relay, n in rows:
        series = per_relay.setdefault(relay or UNKNOWN_RELAY, [0.0] * count)
        i = index[bucket]
        series[i] += n / BUCKET_SECONDS
        total[i] += n / BUCKET_SECONDS
    return Throughput(buckets, dict(sorted(per_relay.items())), total)


def relay_health(store: Store, now: datetime) -> list[RelayHealth]:
    """Every relay seen: recent rate, errors, and what a running engine reported about it."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(t.relay).order_by(t.relay.c.relay)).all()
        rates = _rates(conn, t.throughput.c.relay, now)
    result = []
    recent = now - RATE_WINDOW
    for r in rows:
        if r.reported_at is not None and r.reported_at >= recent and r.state:
            health = r.state
        elif r.error_streak >= 5:
            health = "down"
        elif r.last_error_at is not None and r.last_error_at >= recent:
            health = "degraded"
        elif r.last_ok_at is not None and r.last_ok_at >= recent:
            health = "ok"
        else:
            health = "idle"
        live = r.reported_at is not None and r.reported_at >= recent
        result.append(RelayHealth(
            r.relay, health, rates.get(r.relay, 0.0), r.rate_limit,
            r.connections if live else None, int(r.sent), int(r.errors), int(r.error_streak),
            r.last_error, r.last_error_at, r.last_ok_at))
    return result


def top_domains(store: Store, now: datetime, *, limit: int = 10,
                campaign_id: int | None = None) -> list[DomainRow]:
    """The domains that received most, with deferrals, bounces and any backoff in force."""
    d = t.domain.c
    sums = [sa.func.sum(d[k]).label(k)
            for k in ("sent", "deferred", "bounced", "failed", "complained")]
    select = (sa.select(d.domain, *sums, sa.func.max(d.last_deferred_at).label("deferred_at"),
                        sa.func.max(d.last_reply).label("reply"))
              .group_by(d.domain)
              .order_by(sa.desc("sent"), sa.desc("deferred"), d.domain).limit(limit))
    if campaign_id is not None:
        select = select.where(d.campaign_id == campaign_id)
    with store.engine.connect() as conn:
        rows = conn.execute(select).all()
    backoff_since = now - timedelta(minutes=5)
    return [DomainRow(r.domain, int(r.sent), int(r.deferred), int(r.bounced), int(r.failed),
                      int(r.complained),
                      r.deferred_at is not None and r.deferred_at >= backoff_since, r.reply)
            for r in rows]


def _feed_rows(rows: Any) -> list[FeedRow]:
    return [FeedRow(r.event_id, r.at, r.campaign_id, r.kind, r.domain, r.relay, r.code,
                    r.status, r.reason, r.detail) for r in rows]


def recent_events(store: Store, *, limit: int = 50, campaign_id: int | None = None,
                  kinds: tuple[str, ...] | None = None) -> list[FeedRow]:
    """The newest noteworthy events (bounces, deferrals, complaints ...), newest first."""
    select = sa.select(t.feed).order_by(t.feed.c.event_id.desc()).limit(limit)
    if campaign_id is not None:
        select = select.where(t.feed.c.campaign_id == campaign_id)
    if kinds:
        select = select.where(t.feed.c.kind.in_(kinds))
    with store.engine.connect() as conn:
        return _feed_rows(conn.execute(select))


def campaign_detail(store: Store, campaign_id: int, now: datetime) -> CampaignDetail | None:
    """Everything the detail screen shows about one campaign; None if there is no such one."""
    with store.engine.connect() as conn:
        rows = _campaign_rows(conn, now, campaign_t.c.id == campaign_id)
        if not rows:
            return None
        definition = conn.execute(sa.select(campaign_t.c.definition)
                                  .where(campaign_t.c.id == campaign_id)).scalar() or {}
        ce, br = t.campaign_event.c, t.bounce_reason.c
        by_variant: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for variant, key, n in conn.execute(
                sa.select(ce.variant, ce.kind, ce.count).where(ce.campaign_id == campaign_id)):
            by_variant[variant][key] += int(n)
        reasons = [(domain, reason, int(n)) for domain, reason, n in conn.execute(
            sa.select(br.domain, br.reason, br.count).where(br.campaign_id == campaign_id)
            .order_by(br.count.desc(), br.domain, br.reason).limit(30))]
    row = rows[0]
    percents = {v.get("name"): v.get("percent")
                for v in (definition.get("ab_test") or {}).get("variants", [])}
    variants = [VariantRow(name, percents.get(name), dict(counts))
                for name, counts in sorted(by_variant.items()) if name]
    variants += [VariantRow(str(name), pct, {}) for name, pct in percents.items()
                 if name not in by_variant]
    errors = recent_events(store, limit=10, campaign_id=campaign_id,
                           kinds=("deferred", "bounced", "failed", "error"))
    schedule = dict(definition.get("schedule") or {})
    if row.scheduled_at is not None:
        schedule["scheduled_at"] = row.scheduled_at.isoformat()
    return CampaignDetail(
        row, {s: getattr(row, s) for s in STATES}, reasons, errors, variants,
        top_domains(store, now, limit=10, campaign_id=campaign_id), schedule,
        dict(definition.get("rate") or {}))
