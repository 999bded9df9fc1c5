"""Managing lists and single subscribers: counts, rename, delete, show, unsubscribe, erase.

Erasure (GDPR art. 17) removes the subscriber row and everything that names
them (memberships and deliveries by cascade, the evidence kept in their
events), and keeps only the SHA-256 of the address in the suppression table,
so a later import or a resubscribe-less send can never mail them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.errors import ConfigError, NotFoundError
from dispatcher.lists.addresses import InvalidAddress, normalise_email
from dispatcher.store.database import Store
from dispatcher.store.models import SUBSCRIBER_STATES, utcnow
from dispatcher.store.subscribers import suppression_hash
from dispatcher.store.tables import (
    event_t,
    mailing_list_t,
    membership_t,
    subscriber_t,
    suppression_t,
)


@dataclass
class ListCounts:
    name: str
    created_at: datetime
    # Members still subscribed to the list, by the subscriber's own state.
    by_status: dict[str, int] = field(default_factory=dict)
    # Members who left this list only (their membership is "unsubscribed").
    left_list: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values()) + self.left_list


def list_counts(store: Store) -> list[ListCounts]:
    lists, members, subscribers = mailing_list_t.c, membership_t.c, subscriber_t.c
    query = (sa.select(lists.name, lists.created_at, members.status, subscribers.status,
                       sa.func.count(subscribers.id))
             .select_from(mailing_list_t.outerjoin(membership_t, members.list_id == lists.id)
                          .outerjoin(subscriber_t, subscribers.id == members.subscriber_id))
             .group_by(lists.name, lists.created_at, members.status, subscribers.status)
             .order_by(lists.name))
    out: dict[str, ListCounts] = {}
    with store.engine.connect() as conn:
        for name, created, member_status, status, count in conn.execute(query):
            entry = out.setdefault(name, ListCounts(name, created,
                                                    dict.fromkeys(SUBSCRIBER_STATES, 0)))
            if status is None:
                continue
            if member_status == "subscribed":
                entry.by_status[status] = entry.by_status.get(status, 0) + count
            else:
                entry.left_list += count
    return list(out.values())


def _list_id(conn: sa.Connection, name: str) -> int:
    found = conn.execute(
        sa.select(mailing_list_t.c.id).where(mailing_list_t.c.name == name)).scalar()
    if found is None:
        raise NotFoundError(f"no list called {name!r}")
    return int(found)


def create_list(store: Store, name: str, description: str = "") -> None:
    if not name.strip():
        raise ConfigError("a list needs a name")
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    with store.engine.begin() as conn:
        done = conn.execute(insert(mailing_list_t).values(name=name, description=description,
                                                          created_at=utcnow())
                            .on_conflict_do_nothing(index_elements=["name"])
                            .returning(mailing_list_t.c.id)).first()
        if done is None:
            raise ConfigError(f"a list called {name!r} already exists")


def rename_list(store: Store, old: str, new: str) -> None:
    with store.engine.begin() as conn:
        list_id = _list_id(conn, old)
        if conn.execute(sa.select(mailing_list_t.c.id)
                        .where(mailing_list_t.c.name == new)).scalar() is not None:
            raise ConfigError(f"a list called {new!r} already exists")
        conn.execute(mailing_list_t.update().where(mailing_list_t.c.id == list_id).values(name=new))


def delete_list(store: Store, name: str) -> int:
    """Delete the list and its memberships (the subscribers stay); returns the member count."""
    with store.engine.begin() as conn:
        list_id = _list_id(conn, name)
        members = conn.execute(
            membership_t.delete().where(membership_t.c.list_id == list_id)).rowcount
        conn.execute(mailing_list_t.delete().where(mailing_list_t.c.id == list_id))
    return int(members)


def _normalised(email: str) -> str:
    try:
        return normalise_email(email)
    except InvalidAddress as exc:
        raise NotFoundError(f"{email!r} is not an address ({exc})") from None


def _subscriber(conn: sa.Connection, email: str) -> Any:
    row = conn.execute(
        sa.select(subscriber_t).where(subscriber_t.c.email == _normalised(email))).first()
    if row is None:
        raise NotFoundError(f"no subscriber {email!r}")
    return row


def show_subscriber(store: Store, email: str, events: int = 10) -> dict[str, Any]:
    with store.engine.connect() as conn:
        row = _subscriber(conn, email)
        lists = conn.execute(sa.select(mailing_list_t.c.name, membership_t.c.status)
                             .join(membership_t, membership_t.c.list_id == mailing_list_t.c.id)
                             .where(membership_t.c.subscriber_id == row.id)
                             .order_by(mailing_list_t.c.name)).all()
        recent = conn.execute(sa.select(event_t.c.at, event_t.c.kind, event_t.c.source,
                                        event_t.c.detail)
                              .where(event_t.c.subscriber_id == row.id)
                              .order_by(event_t.c.id.desc()).limit(events)).all()
    return {
        "email": row.email, "name": row.name, "status": row.status,
        "attributes": row.attributes or {},
        "lists": {name: status for name, status in lists},
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "events": [{"at": at.isoformat(), "kind": kind, "source": source, "detail": detail}
                   for at, kind, source, detail in recent],
    }


def unsubscribe(store: Store, email: str, list_name: str | None = None) -> bool:
    """Unsubscribe from everything, or from one list; False if it already was."""
    now = utcnow()
    with store.engine.begin() as conn:
        row = _subscriber(conn, email)
        if list_name is not None:
            list_id = _list_id(conn, list_name)
            changed = conn.execute(membership_t.update().where(
                membership_t.c.list_id == list_id, membership_t.c.subscriber_id == row.id,
                membership_t.c.status != "unsubscribed").values(status="unsubscribed")).rowcount
        else:
            changed = conn.execute(subscriber_t.update()
                                   .where(subscriber_t.c.id == row.id,
                                          subscriber_t.c.status == "active")
                                   .values(status="unsubscribed", updated_at=now)).rowcount
        if changed:
            conn.execute(event_t.insert().values(at=now, kind="unsubscribed", subscriber_id=row.id,
                                                 source="cli", detail=list_name or "", data={}))
    return bool(changed)


def erase(store: Store, email: str) -> None:
    """GDPR erasure: the person's data goes, a hashed suppression entry stays."""
    address = _normalised(email)
    insert = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
    with store.engine.begin() as conn:
        row = conn.execute(
            sa.select(subscriber_t.c.id).where(subscriber_t.c.email == address)).first()
        conn.execute(insert(suppression_t).values(email_hash=suppression_hash(address),
                                                  reason="erased", created_at=utcnow())
                     .on_conflict_do_update(index_elements=["email_hash"],
                                            set_={"reason": "erased"}))
        if row is None:
            return
        # Event evidence (bounce texts, complaint reports) can quote the address.
        conn.execute(event_t.update().where(event_t.c.subscriber_id == row.id)
                     .values(detail="", data={}, subscriber_id=None))
        conn.execute(subscriber_t.delete().where(subscriber_t.c.id == row.id))
