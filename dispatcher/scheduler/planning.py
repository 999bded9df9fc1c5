"""Per-recipient timing written onto the send queue: local-time rollout, windows, warm-up caps.

The delivery engine claims rows whose ``next_attempt_at`` has come, and
nothing else; so the scheduler steers it by setting that column: at start for
``local_time`` (each recipient's own 09:00), and before each sending pass for
windows (rows whose window is closed wait for it to open) and warm-up caps
(rows over today's cap wait for tomorrow).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa

from dispatcher.core.schedule import ScheduleError, SendWindow, local_send_time, zone
from dispatcher.store.database import Store
from dispatcher.store.tables import delivery_t, subscriber_t


class ZoneResolver:
    """A recipient's zone from one attribute, else the default; bad names fall back too."""

    def __init__(self, attribute: str, default: str) -> None:
        self.attribute = attribute
        self.default = zone(default)
        self.bad: set[str] = set()
        self._cache: dict[str, tzinfo] = {}

    def resolve(self, name: object) -> tzinfo:
        if not isinstance(name, str) or not name.strip():
            return self.default
        name = name.strip()
        if name not in self._cache:
            try:
                self._cache[name] = zone(name)
            except ScheduleError:
                self.bad.add(name)
                self._cache[name] = self.default
        return self._cache[name]

    def text(self, dialect: str) -> Any:
        """The attribute as text in SQL (NULL when missing)."""
        column = subscriber_t.c.attributes
        if dialect == "postgresql":
            return column.op("->>", return_type=sa.Text)(sa.literal(self.attribute))
        return sa.func.json_extract(column, sa.literal(f'$."{self.attribute}"'))


def _due(campaign_id: int, now: datetime) -> Any:
    return sa.and_(
        delivery_t.c.campaign_id == campaign_id,
        delivery_t.c.state.in_(("queued", "deferred")),
        sa.or_(delivery_t.c.next_attempt_at.is_(None), delivery_t.c.next_attempt_at <= now))


def _per_zone(store: Store, where: Any, zones: ZoneResolver,
              when: Callable[[tzinfo], datetime | None]) -> int:
    """Set ``next_attempt_at`` to ``when(zone)`` for the rows matching ``where``, zone by zone.

    One statement per distinct attribute value, not one per recipient: a
    million-recipient campaign has a few hundred zones at most.
    """
    text = zones.text(store.dialect)
    member = (sa.select(subscriber_t.c.id).where(subscriber_t.c.id == delivery_t.c.subscriber_id))
    with store.engine.connect() as conn:
        values = [r[0] for r in conn.execute(
            sa.select(text).distinct().select_from(delivery_t)
            .join(subscriber_t, subscriber_t.c.id == delivery_t.c.subscriber_id).where(where))]
    changed = 0
    with store.engine.begin() as conn:
        for value in values:
            at = when(zones.resolve(value))
            if at is None:
                continue
            match = text.is_(None) if value is None else text == value
            statement = (delivery_t.update()
                         .where(where, sa.exists(member.where(match)))
                         .values(next_attempt_at=at))
            changed += int(conn.execute(statement).rowcount or 0)
    return changed


def plan_local_time(store: Store, campaign_id: int, at: time, zones: ZoneResolver, *,
                    start: datetime, grace: timedelta) -> int:
    """Give every fresh delivery its recipient's next ``at`` wall time; returns rows planned."""
    fresh = sa.and_(delivery_t.c.campaign_id == campaign_id, delivery_t.c.state == "queued",
                    delivery_t.c.attempts == 0, delivery_t.c.next_attempt_at.is_(None))
    return _per_zone(store, fresh, zones,
                     lambda tz: local_send_time(at, tz, start, grace=grace))


def park_outside_window(store: Store, campaign_id: int, window: SendWindow,
                        zones: ZoneResolver, *, now: datetime) -> int:
    """Due deliveries whose window (in their zone) is closed wait until it opens."""

    def opening(tz: tzinfo) -> datetime | None:
        opens = window.next_open(now, tz)
        return opens if opens > now else None

    return _per_zone(store, _due(campaign_id, now), zones, opening)


def hold_over(store: Store, campaign_id: int, allowance: int, *, until: datetime,
              now: datetime) -> int:
    """Leave the first ``allowance`` due deliveries due; the rest wait until ``until``."""
    keep = (sa.select(delivery_t.c.id).where(_due(campaign_id, now))
            .order_by(delivery_t.c.id).limit(max(allowance, 0)))
    statement = (delivery_t.update()
                 .where(_due(campaign_id, now), delivery_t.c.id.not_in(keep.scalar_subquery()))
                 .values(next_attempt_at=until))
    with store.engine.begin() as conn:
        return int(conn.execute(statement).rowcount or 0)


def count_due(store: Store, campaign_id: int, now: datetime) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(delivery_t)
                                .where(_due(campaign_id, now))).scalar_one())

