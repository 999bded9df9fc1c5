"""Delivery engine: shared pacing and throttle state per relay and destination

Revision ID: 0005
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_slot",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("tat", sa.Float(precision=53), nullable=False),
        sa.Column("factor", sa.Float(precision=53), nullable=False),
        sa.Column("throttled_at", sa.Float(precision=53), nullable=True),
        sa.Column("suspended_until", sa.Float(precision=53), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_slot")
