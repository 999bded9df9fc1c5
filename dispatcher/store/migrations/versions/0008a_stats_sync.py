"""Dashboard rollups: when each campaign's state counts were last recounted

Revision ID: 0008a
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008a"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stats_campaign_sync",
        sa.Column("campaign_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("updated_at", sa.DateTime, nullable=True),
        sa.Column("event_floor", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stats_campaign_sync")
