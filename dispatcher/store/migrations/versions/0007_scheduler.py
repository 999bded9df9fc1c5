"""Scheduler tables: schedule entries, campaign runners, warm-up days, APScheduler's jobs

Revision ID: 0007
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedule_entry",
        sa.Column("name", sa.String(length=200), primary_key=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("cron", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("source_path", sa.String(), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("relay", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "campaign_runner",
        sa.Column("campaign_id", sa.Integer(),
                  sa.ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "warmup_day",
        sa.Column("key", sa.String(length=255), primary_key=True),
        sa.Column("day", sa.DateTime(), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    # The shape APScheduler 3.x's SQLAlchemyJobStore expects (it creates it only if missing).
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Float(25), nullable=True, index=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("apscheduler_jobs")
    op.drop_table("warmup_day")
    op.drop_table("campaign_runner")
    op.drop_table("schedule_entry")
