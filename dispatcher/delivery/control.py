"""Pause, resume, cancel a campaign, and re-queue its failed deliveries.

The engine reads ``campaign.status`` before every claim: a paused campaign's
workers give their unsent claims back and stop; a cancelled one's skip them.
Resume and retry-failed make the campaign ``running`` again, so ``send``,
``worker`` and the scheduler pick it up.
"""

from __future__ import annotations

import sqlalchemy as sa

from dispatcher.errors import DeliveryError, NotFoundError
from dispatcher.store.database import Store
from dispatcher.store.models import utcnow
from dispatcher.store.tables import campaign_t, delivery_t

_ALLOWED = {
    "pause": ("running", "scheduled"),
    "resume": ("paused",),
    "cancel": ("running", "scheduled", "paused", "draft"),
}


def _campaign_id(conn: sa.Connection, name: str) -> tuple[int, str]:
    row = conn.execute(sa.select(campaign_t.c.id, campaign_t.c.status)
                       .where(campaign_t.c.name == name)).first()
    if row is None:
        raise NotFoundError(f"no campaign named {name!r} in the store")
    return int(row.id), str(row.status)


def set_status(store: Store, name: str, action: str) -> str:
    """Apply ``pause``/``resume``/``cancel``; returns the new status."""
    new = {"pause": "paused", "resume": "running", "cancel": "cancelled"}[action]
    now = utcnow()
    with store.engine.begin() as conn:
        cid, status = _campaign_id(conn, name)
        if status not in _ALLOWED[action]:
            raise DeliveryError(f"campaign {name!r} is {status}; cannot {action} it")
        conn.execute(campaign_t.update().where(campaign_t.c.id == cid)
                     .values(status=new, updated_at=now))
        if action == "cancel":
            # Claimed rows are skipped by their worker, which sees the status at its next claim.
            conn.execute(delivery_t.update().where(
                delivery_t.c.campaign_id == cid, delivery_t.c.state.in_(("queued", "deferred"))
            ).values(state="skipped", last_reply="not sent: campaign cancelled", updated_at=now))
    return new


def retry_failed(store: Store, name: str) -> int:
    """Queue every ``failed`` delivery of the campaign again (fresh retry clock); how many."""
    now = utcnow()
    with store.engine.begin() as conn:
        cid, status = _campaign_id(conn, name)
        if status == "cancelled":
            raise DeliveryError(f"campaign {name!r} is cancelled; nothing is retried")
        count = conn.execute(delivery_t.update().where(
            delivery_t.c.campaign_id == cid, delivery_t.c.state == "failed"
        ).values(state="queued", next_attempt_at=None, first_attempt_at=None,
                 lease_owner=None, lease_expires_at=None, updated_at=now)).rowcount or 0
        if count:
            conn.execute(campaign_t.update().where(campaign_t.c.id == cid).values(
                status="running", finished_at=None, updated_at=now))
    return int(count)
