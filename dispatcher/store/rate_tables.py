"""Shared pacing state of the delivery engine (revision 0005).

``rate_slot`` holds one row per limited key (``relay:NAME``, ``dest:google``):
its GCRA "theoretical arrival time" (see :mod:`dispatcher.core.rates`), so every
worker paces against one number with one atomic UPDATE, and the key's adaptive
throttle (rate factor, when it was last throttled, suspended until when).
Times are seconds since the Unix epoch: workers on several machines compare
them, so they must share a clock (NTP), as they already do for leases.
Counted windows (per minute/hour/day quotas) live in ``rate_counter`` (0001).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

metadata = SQLModel.metadata

rate_slot = sa.Table(
    "rate_slot", metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("tat", sa.Float(precision=53), nullable=False, default=0.0),
    sa.Column("factor", sa.Float(precision=53), nullable=False, default=1.0),
    sa.Column("throttled_at", sa.Float(precision=53), nullable=True),
    sa.Column("suspended_until", sa.Float(precision=53), nullable=False, default=0.0),
)
