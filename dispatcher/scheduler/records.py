"""The scheduler's statements: schedules, exactly-once starts, runner leases, warm-up counts.

Every decision two daemons could both make is a conditional ``UPDATE`` (or an
insert guarded by a key) whose row count says who won, so it holds on
PostgreSQL with many daemons and on SQLite alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.errors import NotFoundError, StoreError
from dispatcher.store.database import Store
from dispatcher.store.tables import (
    campaign_t,
    delivery_t,
    event_t,
    runner_t,
    schedule_entry_t,
    warmup_t,
)

# A campaign in one of these may be (re)scheduled under the same name.
RESCHEDULABLE = ("draft", "scheduled", "missed")


def _insert(store: Store) -> Any:
    return postgresql.insert if store.dialect == "postgresql" else sqlite.insert


def _event(conn: sa.Connection, campaign_id: int, kind: str, detail: str, now: datetime) -> None:
    conn.execute(event_t.insert().values(at=now, kind=kind, campaign_id=campaign_id,
                                         source="scheduler", detail=detail, data={}))


@dataclass(frozen=True)
class NewSchedule:
    name: str
    kind: str  # at | cron
    definition: dict[str, Any]
    source_path: str
    relay: str  # as given: a name, a URL (credentials via ${VAR}), "capture"
    at: datetime | None = None
    display: str = ""  # the relay without credentials, for the campaign row
    cron: str = ""
    timezone: str = "UTC"


def save_schedule(store: Store, entry: NewSchedule, *, now: datetime) -> None:
    """Store a schedule; a one-off one also gets its campaign row, ``scheduled`` at its time."""
    values = {"name": entry.name, "kind": entry.kind, "cron": entry.cron,
              "timezone": entry.timezone, "source_path": entry.source_path,
              "definition": entry.definition, "relay": entry.relay, "created_at": now}
    upsert = _insert(store)(schedule_entry_t).values(**values)
    upsert = upsert.on_conflict_do_update(
        index_elements=["name"], set_={k: v for k, v in values.items() if k != "name"})
    with store.engine.begin() as conn:
        if entry.kind == "at":
            row = conn.execute(sa.select(campaign_t.c.id, campaign_t.c.status)
                               .where(campaign_t.c.name == entry.name)).first()
            if row is not None and row.status not in RESCHEDULABLE:
                raise StoreError(f"campaign {entry.name!r} is {row.status}; give the "
                                 f"campaign a new name to send it again")
            fields = {"source_path": entry.source_path, "definition": entry.definition,
                      "status": "scheduled", "relay": entry.display,
                      "scheduled_at": entry.at,
                      "updated_at": now}
            if row is None:
                conn.execute(campaign_t.insert().values(name=entry.name, created_at=now,
                                                        **fields))
            else:
                conn.execute(campaign_t.update().where(campaign_t.c.id == row.id)
                             .values(**fields))
        conn.execute(upsert)


def schedules(store: Store) -> list[dict[str, Any]]:
    """Every schedule with its campaign's status and time (cron ones: their last instance)."""
    with store.engine.connect() as conn:
        entries = conn.execute(
            sa.select(schedule_entry_t).order_by(schedule_entry_t.c.name)).all()
        campaigns = {r.name: r for r in conn.execute(
            sa.select(campaign_t.c.name, campaign_t.c.status, campaign_t.c.scheduled_at))}
    rows: list[dict[str, Any]] = []
    for e in entries:
        c = campaigns.get(e.name)
        rows.append({"name": e.name, "kind": e.kind, "cron": e.cron, "timezone": e.timezone,
                     "relay": e.relay, "status": c.status if c else "active",
                     "at": c.scheduled_at if c else None, "last_run_at": e.last_run_at})
    return rows


def remove_schedule(store: Store, name: str) -> None:
    """Forget a schedule; a one-off campaign that has not started goes with it."""
    with store.engine.begin() as conn:
        gone = conn.execute(
            schedule_entry_t.delete().where(schedule_entry_t.c.name == name)).rowcount
        dropped = conn.execute(campaign_t.delete().where(
            campaign_t.c.name == name, campaign_t.c.status.in_(RESCHEDULABLE),
            ~sa.exists().where(delivery_t.c.campaign_id == campaign_t.c.id))).rowcount
        if not gone and not dropped:
            raise NotFoundError(f"no schedule named {name!r} (see `dispatcher schedules`)")


def all_entries(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(schedule_entry_t).order_by(schedule_entry_t.c.name)))


def create_instance(store: Store, parent: Any, name: str, definition: dict[str, Any], *,
                    at: datetime, status: str, now: datetime) -> bool:
    """One run of a recurring schedule as its own campaign; False if it exists already."""
    insert = (_insert(store)(campaign_t).values(
        name=name, source_path=parent.source_path, definition=definition, status=status,
        relay="", scheduled_at=at, created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["name"]).returning(campaign_t.c.id))
    with store.engine.begin() as conn:
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... RETURNING.
        made = conn.execute(insert).first() is not None
        if made:
            conn.execute(schedule_entry_t.update().where(schedule_entry_t.c.name == parent.name)
                         .values(last_run_at=at))
    return made


def mark_missed(store: Store, now: datetime, grace: timedelta) -> list[str]:
    """Scheduled campaigns whose time is more than ``grace`` ago become ``missed``."""
    with store.engine.begin() as conn:
        late = conn.execute(sa.select(campaign_t.c.id, campaign_t.c.name, campaign_t.c.scheduled_at)
                            .where(campaign_t.c.status == "scheduled",
                                   campaign_t.c.scheduled_at < now - grace)).all()
        names = []
        for row in late:
            won = conn.execute(campaign_t.update().where(
                campaign_t.c.id == row.id, campaign_t.c.status == "scheduled")
                .values(status="missed", updated_at=now)).rowcount
            if won:
                names.append(row.name)
                _event(conn, row.id, "missed", f"due at {row.scheduled_at.isoformat()}, "
                       f"more than {grace} ago when the scheduler saw it", now)
    return names


def due(store: Store, now: datetime) -> list[int]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(
            sa.select(campaign_t.c.id).where(campaign_t.c.status == "scheduled",
                                             campaign_t.c.scheduled_at <= now)
            .order_by(campaign_t.c.scheduled_at))]


def claim_start(store: Store, campaign_id: int, *, owner: str, now: datetime,
                lease: timedelta) -> bool:
    """Move one campaign ``scheduled -> running``; only one daemon ever gets True."""
    with store.engine.begin() as conn:
        won = conn.execute(campaign_t.update().where(
            campaign_t.c.id == campaign_id, campaign_t.c.status == "scheduled")
            .values(status="running", started_at=now, updated_at=now)).rowcount
        if won != 1:
            return False
        conn.execute(runner_t.delete().where(runner_t.c.campaign_id == campaign_id))
        conn.execute(runner_t.insert().values(campaign_id=campaign_id, owner=owner,
                                              expires_at=now + lease))
        _event(conn, campaign_id, "started", f"started by {owner}", now)
    return True


def has_deliveries(store: Store, campaign_id: int) -> bool:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(delivery_t.c.id).where(
            delivery_t.c.campaign_id == campaign_id).limit(1)).first() is not None


def set_status(store: Store, campaign_id: int, status: str, detail: str, *,
               now: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(campaign_t.update().where(campaign_t.c.id == campaign_id)
                     .values(status=status, updated_at=now))
        _event(conn, campaign_id, "error" if status == "paused" else status, detail, now)


def take_runs(store: Store, *, owner: str, now: datetime, lease: timedelta) -> list[int]:
    """The running campaigns this daemon sends: those it holds, plus any whose runner is gone.

    A runner lease that is not renewed (its daemon died) expires and the next
    daemon to look takes the campaign over.
    """
    until = now + lease
    with store.engine.begin() as conn:
        running = [r[0] for r in conn.execute(
            sa.select(campaign_t.c.id).where(campaign_t.c.status == "running")
            .order_by(campaign_t.c.id))]
        mine: list[int] = []
        for cid in running:
            renewed = conn.execute(runner_t.update().where(
                runner_t.c.campaign_id == cid,
                sa.or_(runner_t.c.owner == owner, runner_t.c.expires_at < now))
                .values(owner=owner, expires_at=until)).rowcount
            if not renewed:
                fresh = (_insert(store)(runner_t)
                         .values(campaign_id=cid, owner=owner, expires_at=until)
                         .on_conflict_do_nothing(index_elements=["campaign_id"])
                         .returning(runner_t.c.campaign_id))
                renewed = int(conn.execute(fresh).first() is not None)
            if renewed:
                mine.append(cid)
    return mine


def drop_runner(store: Store, *, owner: str, campaign_id: int | None = None) -> None:
    with store.engine.begin() as conn:
        where = [runner_t.c.owner == owner]
        if campaign_id is not None:
            where.append(runner_t.c.campaign_id == campaign_id)
        conn.execute(runner_t.delete().where(*where))


def release_leases(store: Store, *, owner: str, now: datetime) -> int:
    """Give this process's claimed deliveries back to the queue (on shutdown)."""
    with store.engine.begin() as conn:
        return int(conn.execute(delivery_t.update().where(
            delivery_t.c.state == "claimed", delivery_t.c.lease_owner == owner)
            .values(state="queued", lease_owner=None, lease_expires_at=None,
                    updated_at=now)).rowcount or 0)


def expire_leases(store: Store, *, now: datetime) -> int:
    """Deliveries whose worker died with them claimed go back to the queue."""
    with store.engine.begin() as conn:
        return int(conn.execute(delivery_t.update().where(
            delivery_t.c.state == "claimed", delivery_t.c.lease_expires_at < now)
            .values(state="queued", lease_owner=None, lease_expires_at=None,
                    updated_at=now)).rowcount or 0)


def warmup_used(store: Store, key: str, day: datetime) -> int:
    with store.engine.connect() as conn:
        value = conn.execute(sa.select(warmup_t.c.count).where(
            warmup_t.c.key == key, warmup_t.c.day == day)).scalar()
    return int(value or 0)


def warmup_add(store: Store, key: str, day: datetime, count: int) -> None:
    if count <= 0:
        return
    insert = _insert(store)(warmup_t).values(key=key, day=day, count=count)
    upsert = insert.on_conflict_do_update(
        index_elements=["key", "day"], set_={"count": warmup_t.c.count + insert.excluded.count})
    with store.engine.begin() as conn:
        conn.execute(upsert)
