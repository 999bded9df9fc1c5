"""Dashboard rollups: per campaign/state, throughput, domains, relays, recent events

Also indexes event.delivery_id: the rollup looks up a delivery's previous
outcome there to move its count from one state to the next.

Revision ID: 0008
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stats_watermark",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("gap_id", sa.BigInteger, nullable=True),
        sa.Column("gap_since", sa.DateTime, nullable=True),
    )
    op.create_table(
        "stats_campaign_state",
        sa.Column("campaign_id", sa.Integer, primary_key=True),
        sa.Column("variant", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stats_campaign_event",
        sa.Column("campaign_id", sa.Integer, primary_key=True),
        sa.Column("variant", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "stats_throughput",
        sa.Column("bucket", sa.DateTime, primary_key=True),
        sa.Column("campaign_id", sa.Integer, primary_key=True),
        sa.Column("relay", sa.String(200), primary_key=True),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("deferred", sa.Integer, nullable=False),
        sa.Column("bounced", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
    )
    op.create_table(
        "stats_domain",
        sa.Column("campaign_id", sa.Integer, primary_key=True),
        sa.Column("domain", sa.String(255), primary_key=True),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("deferred", sa.Integer, nullable=False),
        sa.Column("bounced", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("complained", sa.Integer, nullable=False),
        sa.Column("last_code", sa.Integer, nullable=True),
        sa.Column("last_reply", sa.String, nullable=True),
        sa.Column("last_deferred_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "stats_bounce_reason",
        sa.Column("campaign_id", sa.Integer, primary_key=True),
        sa.Column("domain", sa.String(255), primary_key=True),
        sa.Column("reason", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "stats_relay",
        sa.Column("relay", sa.String(200), primary_key=True),
        sa.Column("sent", sa.BigInteger, nullable=False),
        sa.Column("deferred", sa.BigInteger, nullable=False),
        sa.Column("bounced", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("error_streak", sa.Integer, nullable=False),
        sa.Column("last_ok_at", sa.DateTime, nullable=True),
        sa.Column("last_error_at", sa.DateTime, nullable=True),
        sa.Column("last_error", sa.String, nullable=True),
        sa.Column("connections", sa.Integer, nullable=True),
        sa.Column("rate_limit", sa.Float, nullable=True),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("reported_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "stats_feed",
        sa.Column("event_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("relay", sa.String(200), nullable=False),
        sa.Column("code", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("detail", sa.String, nullable=False),
    )
    op.create_index("ix_stats_feed_campaign", "stats_feed", ["campaign_id", "event_id"])
    op.create_index("ix_event_delivery_id", "event", ["delivery_id"])


def downgrade() -> None:
    op.drop_index("ix_event_delivery_id", table_name="event")
    for name in ("stats_feed", "stats_relay", "stats_bounce_reason", "stats_domain",
                 "stats_throughput", "stats_campaign_event", "stats_campaign_state",
                 "stats_watermark"):
        op.drop_table(name)
