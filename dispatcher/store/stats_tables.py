"""Rollup tables for the dashboard and ``dispatcher status`` (revision 0008).

They hold running totals that :func:`dispatcher.store.stats.rollup` advances
from the event stream, so readers never count the delivery table, which may
hold millions of rows. Every table is small: one row per campaign and state,
per campaign and domain, per relay, per ten-second bucket, or per recent
noteworthy event.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from dispatcher.store.models import UTCDateTime

metadata = SQLModel.metadata

# How far each stream has been rolled up: every id <= last_id is counted.
# ``gap_id``/``gap_since`` remember an id that was missing (a transaction not
# committed yet, or one rolled back) and since when, so it is waited for briefly.
watermark = sa.Table(
    "stats_watermark", metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("last_id", sa.BigInteger, nullable=False, default=0),
    sa.Column("gap_id", sa.BigInteger, nullable=True),
    sa.Column("gap_since", UTCDateTime, nullable=True),
)

# Deliveries per campaign and current state ("claimed" counts as queued). ``variant``
# is always "" for now: a delivery's variant may be chosen only when it is sent.
campaign_state = sa.Table(
    "stats_campaign_state", metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("variant", sa.String(32), primary_key=True),
    sa.Column("state", sa.String(16), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False, default=0),
)

# Events per campaign, variant and kind (attempts, opens, clicks, unsubscribes ...).
campaign_event = sa.Table(
    "stats_campaign_event", metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("variant", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False, default=0),
)

# SMTP outcomes per ten-second bucket, campaign and relay: the throughput chart and rates.
throughput = sa.Table(
    "stats_throughput", metadata,
    sa.Column("bucket", UTCDateTime, primary_key=True),
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("relay", sa.String(200), primary_key=True),
    sa.Column("sent", sa.Integer, nullable=False, default=0),
    sa.Column("deferred", sa.Integer, nullable=False, default=0),
    sa.Column("bounced", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
)

domain = sa.Table(
    "stats_domain", metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("sent", sa.Integer, nullable=False, default=0),
    sa.Column("deferred", sa.Integer, nullable=False, default=0),
    sa.Column("bounced", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("complained", sa.Integer, nullable=False, default=0),
    sa.Column("last_code", sa.Integer, nullable=True),
    sa.Column("last_reply", sa.String, nullable=True),
    sa.Column("last_deferred_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=True),
)

bounce_reason = sa.Table(
    "stats_bounce_reason", metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("domain", sa.String(255), primary_key=True),
    sa.Column("reason", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False, default=0),
)

# Relay health: totals and errors from the event stream; ``connections``,
# ``rate_limit`` and ``state`` are published by a running engine (report_relay).
relay = sa.Table(
    "stats_relay", metadata,
    sa.Column("relay", sa.String(200), primary_key=True),
    sa.Column("sent", sa.BigInteger, nullable=False, default=0),
    sa.Column("deferred", sa.BigInteger, nullable=False, default=0),
    sa.Column("bounced", sa.BigInteger, nullable=False, default=0),
    sa.Column("errors", sa.BigInteger, nullable=False, default=0),
    sa.Column("error_streak", sa.Integer, nullable=False, default=0),
    sa.Column("last_ok_at", UTCDateTime, nullable=True),
    sa.Column("last_error_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.String, nullable=True),
    sa.Column("connections", sa.Integer, nullable=True),
    sa.Column("rate_limit", sa.Float, nullable=True),
    sa.Column("state", sa.String(32), nullable=True),
    sa.Column("reported_at", UTCDateTime, nullable=True),
)

# The latest noteworthy events (bounces, deferrals, complaints ...), with their
# domain and relay resolved, pruned per campaign.
feed = sa.Table(
    "stats_feed", metadata,
    sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("campaign_id", sa.Integer, nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("domain", sa.String(255), nullable=False, default=""),
    sa.Column("relay", sa.String(200), nullable=False, default=""),
    sa.Column("code", sa.Integer, nullable=True),
    sa.Column("status", sa.String(16), nullable=True),
    sa.Column("reason", sa.String(32), nullable=True),
    sa.Column("detail", sa.String, nullable=False, default=""),
    sa.Index("ix_stats_feed_campaign", "campaign_id", "event_id"),
)

# When each campaign's state counts were last recounted from the delivery table:
# a campaign row that changed since (cancel, retry-failed, finish) is recounted,
# because those move deliveries without writing an event for each. Events with
# ids up to ``event_floor`` about deliveries with ids up to ``delivery_floor`` are
# already in that count (deliveries above it were not counted yet).
campaign_sync = sa.Table(
    "stats_campaign_sync", metadata,
    sa.Column("campaign_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("updated_at", UTCDateTime, nullable=True),
    sa.Column("event_floor", sa.BigInteger, nullable=False, default=0),
    sa.Column("delivery_floor", sa.BigInteger, nullable=False, default=0),
)
