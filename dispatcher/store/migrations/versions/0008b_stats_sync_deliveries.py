"""Dashboard rollups: the delivery id up to which a campaign's recount went

Revision ID: 0008b
Revises: 0008a
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008b"
down_revision: str | Sequence[str] | None = "0008a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stats_campaign_sync") as batch:
        batch.add_column(sa.Column("delivery_floor", sa.BigInteger, nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("stats_campaign_sync") as batch:
        batch.drop_column("delivery_floor")
