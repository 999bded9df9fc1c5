"""Tables of the feedback loop (migration 0006).

``feedback_seen`` makes intake idempotent: every returned message (by a digest
of its bytes) and every SMTP-time bounce (``delivery:ID``) is applied once,
however often a mailbox is re-read or a pass is re-run after a crash.
"""

from __future__ import annotations

import sqlalchemy as sa

from dispatcher.store.models import UTCDateTime

metadata = sa.MetaData()

feedback_seen = sa.Table(
    "feedback_seen",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
)
