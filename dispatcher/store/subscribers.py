"""Writing subscribers and memberships in batches with SQLAlchemy Core.

The ORM costs ~8x more per row than Core here (see the field notes), and an
import may carry a million rows, so these functions take whole batches, each
in one transaction: an import killed half-way leaves whole batches behind,
and running it again finds those rows known and unchanged.

Compliance lives here, not in the CSV code: an address that unsubscribed,
bounced or complained, or whose hash is in the suppression table, is never
made active again unless the caller passes ``resubscribe=True``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dispatcher.store.database import Store
from dispatcher.store.models import (
    SUBSCRIBER_STATES,
    Event,
    MailingList,
    Membership,
    Subscriber,
    Suppression,
    utcnow,
)

_subscriber = Subscriber.__table__  # type: ignore[attr-defined]
_membership = Membership.__table__  # type: ignore[attr-defined]
_list = MailingList.__table__  # type: ignore[attr-defined]
_suppression = Suppression.__table__  # type: ignore[attr-defined]
_event = Event.__table__  # type: ignore[attr-defined]

MODES = ("upsert", "add", "overwrite")
assert SUBSCRIBER_STATES[0] == "active"


def suppression_hash(email: str) -> str:
    """The key of an address in the suppression table: SHA-256 of the normalised address."""
    return hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()


@dataclass
class Incoming:
    """One subscriber as a file gives it; ``None`` means the file has no such column."""

    email: str
    name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    lists: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    line: int = 0


@dataclass
class BatchResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    # Known addresses that are unsubscribed/bounced/complained and stayed so.
    suppressed_kept: int = 0
    resubscribed: int = 0
    # Rows refused because the address is in the suppression table (erased, complained ...).
    refused: list[tuple[Incoming, str]] = field(default_factory=list)


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def ensure_list(store: Store, name: str) -> int:
    """The id of the list called ``name``, created if it does not exist yet."""
    with store.engine.begin() as conn:
        return ensure_list_in(conn, name)


def ensure_list_in(conn: Connection, name: str) -> int:
    conn.execute(_insert(conn, _list).values(name=name, description="", created_at=utcnow())
                 .on_conflict_do_nothing(index_elements=["name"]))
    return int(conn.execute(sa.select(_list.c.id).where(_list.c.name == name)).scalar_one())


def find_list(store: Store, name: str) -> int | None:
    with store.engine.connect() as conn:
        value = conn.execute(sa.select(_list.c.id).where(_list.c.name == name)).scalar()
    return None if value is None else int(value)


def _decide(old: Any, row: Incoming, mode: str, resubscribe: bool,
            result: BatchResult) -> tuple[dict[str, Any] | None, str | None]:
    """The update for a known subscriber (or None) and the event kind it causes."""
    values: dict[str, Any] = {}
    event: str | None = None
    if mode != "add":
        attrs = dict(row.attributes) if mode == "overwrite" else {**(old.attributes or {}),
                                                                   **row.attributes}
        if attrs != (old.attributes or {}):
            values["attributes"] = attrs
        name = row.name if row.name is not None else ("" if mode == "overwrite" else None)
        if name is not None and (name or mode == "overwrite") and name != old.name:
            values["name"] = name
    wanted = row.status or "active"
    if old.status == "active" and wanted != "active":
        # Honouring a "left" state from the file is always safe.
        values["status"] = wanted
        event = wanted if wanted in ("unsubscribed", "complained") else None
    elif old.status != "active":
        if resubscribe and wanted == "active":
            values["status"] = "active"
            result.resubscribed += 1
            event = "resubscribed"
        elif wanted != old.status and wanted != "active" and mode != "add":
            values["status"] = wanted
        else:
            result.suppressed_kept += 1
    return (values or None), event


class _Known(NamedTuple):
    id: int
    email: str
    name: str
    attributes: dict[str, Any]
    status: str


class _Raw:
    """Driver-level SQL for the per-row hot path.

    SQLAlchemy's per-parameter type processing (JSON, ``UTCDateTime``) and
    expanding ``IN`` cost ~4x the database's own work in the import
    benchmark, so the four statements run per batch are written for the DBAPI
    directly, producing exactly what the column types would have stored.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.mark = "%s" if self.pg else "?"

    # psycopg's pure-Python array dumper cost more than the whole import; one JSON
    # document per batch (json.dumps is C) unpacked by the server is ~10x cheaper.
    PG_IN = "IN (SELECT jsonb_array_elements_text(%s::jsonb))"

    def stamp(self, value: datetime) -> str:
        # SQLAlchemy's SQLite DATETIME storage format, microseconds always written;
        # PostgreSQL parses the same text into its naive UTC timestamp column.
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def select_in(self, sql: str, values: Sequence[Any]) -> Sequence[Any]:
        if not values:
            return []
        if self.pg:
            return self.conn.exec_driver_sql(sql.format(self.PG_IN),
                                             (json.dumps(list(values)),)).fetchall()
        marks = ",".join("?" * len(values))
        return self.conn.exec_driver_sql(sql.format(f"IN ({marks})"), tuple(values)).fetchall()

    def execute_in(self, sql: str, params: tuple[Any, ...], values: Sequence[Any]) -> None:
        sql = sql.replace("?", self.mark)
        if self.pg:
            self.conn.exec_driver_sql(sql.format(self.PG_IN), (*params, json.dumps(list(values))))
        else:
            marks = ",".join("?" * len(values))
            self.conn.exec_driver_sql(sql.format(f"IN ({marks})"), (*params, *values))

    def insert_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.conn.exec_driver_sql(sql.replace("?", self.mark), rows)


def write_batch(store: Store, rows: Sequence[Incoming], list_ids: dict[str, int], *,
                mode: str = "upsert", resubscribe: bool = False,
                dry_run: bool = False) -> BatchResult:
    """Add or merge ``rows`` (distinct addresses) and subscribe them to their lists.

    ``list_ids`` maps list names to ids; a name missing there (a dry run does
    not create lists) is skipped. Nothing is written when ``dry_run``.
    """
    result = BatchResult()
    if not rows:
        return result
    if mode not in MODES:
        raise ValueError(f"unknown import mode {mode!r}")
    now = utcnow()
    with store.engine.begin() as conn:
        raw = _Raw(conn)
        hashes = {suppression_hash(r.email): r for r in rows}
        blocked: dict[str, str] = dict(raw.select_in(
            "SELECT email_hash, reason FROM suppression WHERE email_hash {}", list(hashes)))
        if blocked and resubscribe:
            # Only an explicit --resubscribe lifts a suppression.
            if not dry_run:
                conn.execute(_suppression.delete()
                             .where(_suppression.c.email_hash.in_(list(blocked))))
        elif blocked:
            for digest, reason in blocked.items():
                result.refused.append((hashes[digest], f"suppressed ({reason})"))
            refused = {hashes[d].email for d in blocked}
            rows = [r for r in rows if r.email not in refused]
        known: dict[str, _Known] = {}
        for row in raw.select_in("SELECT id, email, name, attributes, status FROM subscriber "
                                 "WHERE email {}", [r.email for r in rows]):
            attrs = json.loads(row[3]) if isinstance(row[3], str) else row[3]
            known[row[1]] = _Known(row[0], row[1], row[2], attrs or {}, row[4])
        stamp_now = raw.stamp(now)
        fresh = [
            (r.email, r.name or "", r.attributes if raw.pg else json.dumps(r.attributes),
             r.status or "active",
             raw.stamp(r.created_at) if r.created_at else stamp_now,
             raw.stamp(r.updated_at) if r.updated_at else
             raw.stamp(r.created_at) if r.created_at else stamp_now)
            for r in rows if r.email not in known
        ]
        result.added = len(fresh)
        updates: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for r in rows:
            old = known.get(r.email)
            if old is None:
                continue
            values, kind = _decide(old, r, mode, resubscribe, result)
            if values is None:
                result.unchanged += 1
                continue
            result.updated += 1
            updates.append({"b_id": old.id, "name": values.get("name", old.name),
                            "attributes": values.get("attributes", old.attributes or {}),
                            "status": values.get("status", old.status), "updated_at": now})
            if kind:
                events.append({"at": now, "kind": kind, "subscriber_id": old.id,
                               "source": "import", "detail": f"line {r.line}", "data": {}})
        if dry_run:
            conn.rollback()
            return result
        if fresh and raw.pg:
            # One statement per batch from column arrays: executemany costs a server
            # round of parse/plan per row (~2,000 rows/s in the benchmark).
            conn.exec_driver_sql(
                "INSERT INTO subscriber (email, name, attributes, status, created_at, "
                "updated_at) SELECT e, n, a, s, c, u FROM jsonb_to_recordset(%s::jsonb) "
                "AS t(e text, n text, a jsonb, s text, c timestamp, u timestamp) "
                "ON CONFLICT (email) DO NOTHING",
                (json.dumps([dict(zip("enascu", row, strict=True)) for row in fresh]),))
        elif fresh:
            raw.insert_many(
                "INSERT INTO subscriber (email, name, attributes, status, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (email) DO NOTHING", fresh)
        if updates:
            conn.execute(_subscriber.update().where(_subscriber.c.id == sa.bindparam("b_id"))
                         .values(name=sa.bindparam("name"), attributes=sa.bindparam("attributes"),
                                 status=sa.bindparam("status"),
                                 updated_at=sa.bindparam("updated_at")), updates)
        if events:
            conn.execute(_event.insert(), events)
        by_list: dict[int, list[str]] = {}
        for r in rows:
            for name in r.lists:
                if name in list_ids:
                    by_list.setdefault(list_ids[name], []).append(r.email)
        on_conflict = "DO UPDATE SET status = 'subscribed'" if resubscribe else "DO NOTHING"
        for list_id, members in by_list.items():
            # One INSERT ... SELECT per list: no ids travel to Python and back.
            raw.execute_in(
                "INSERT INTO membership (list_id, subscriber_id, status, created_at) "
                "SELECT ?, id, 'subscribed', ? FROM subscriber WHERE email {} "
                f"ON CONFLICT (list_id, subscriber_id) {on_conflict}", (list_id, stamp_now),
                members)
    return result
