"""What an export reads: the chosen subscribers' rows, their attribute keys, list names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dispatcher.errors import ConfigError, NotFoundError
from dispatcher.store.audience import filter_sql
from dispatcher.store.database import Store
from dispatcher.store.models import SUBSCRIBER_STATES
from dispatcher.store.subscribers import find_list
from dispatcher.store.tables import mailing_list_t, membership_t, subscriber_t

STATUSES = (*SUBSCRIBER_STATES, "all")


@dataclass(frozen=True)
class ExportOptions:
    list_name: str | None = None
    status: str = "all"
    where: str | None = None
    attributes_json: bool = False


def _lists_column(dialect: str) -> Any:
    """The ids of the lists a subscriber is subscribed to, comma-separated, in any order.

    Ids rather than names: PostgreSQL's per-row ``string_agg`` of names joined from
    mailing_list cost more than the rest of the query; the exporter knows the names.
    """
    ids = sa.select(membership_t.c.list_id).where(membership_t.c.subscriber_id == subscriber_t.c.id,
                                                  membership_t.c.status == "subscribed")
    if dialect == "postgresql":
        agg = sa.func.string_agg(sa.cast(membership_t.c.list_id, sa.Text), ",")
    else:
        agg = sa.func.group_concat(membership_t.c.list_id, ",")
    return ids.with_only_columns(agg).scalar_subquery().label("lists")


def export_query(store: Store, options: ExportOptions,
                 ids: tuple[int, int] | None = None) -> sa.Select[Any]:
    """The exported rows in id order; ``ids`` = (after, upto) limits them to one id range."""
    if options.status not in STATUSES:
        raise ConfigError(f"--status {options.status!r}: expected one of {', '.join(STATUSES)}")
    # Raw column values (JSON text or a dict, timestamp text or a naive datetime): the
    # column types' per-row conversions cost more than the rest of the export together.
    # PostgreSQL sends the JSON as text too: psycopg's jsonb loader (json.loads per
    # row) cost as much as the whole query.
    attributes = (sa.cast(subscriber_t.c.attributes, sa.Text) if store.dialect == "postgresql"
                  else sa.type_coerce(subscriber_t.c.attributes, sa.Text))
    query = sa.select(subscriber_t.c.email, subscriber_t.c.name, subscriber_t.c.status,
                      _lists_column(store.dialect),
                      attributes.label("attributes"),
                      sa.type_coerce(subscriber_t.c.created_at, sa.Text).label("created_at"),
                      sa.type_coerce(subscriber_t.c.updated_at, sa.Text).label("updated_at"))
    if options.list_name is not None:
        list_id = find_list(store, options.list_name)
        if list_id is None:
            raise NotFoundError(f"no list called {options.list_name!r}")
        # With an id range, the members are read in that range too: neither database
        # carries s.id's range over to membership by itself, so each range read the whole
        # list's members (a 1M-row list exported 3-4x slower than the whole table).
        members = sa.select(membership_t.c.subscriber_id).where(membership_t.c.list_id == list_id)
        if ids is not None:
            members = members.where(membership_t.c.subscriber_id > ids[0],
                                    membership_t.c.subscriber_id <= ids[1])
        query = query.where(subscriber_t.c.id.in_(members))
    if options.status != "all":
        query = query.where(subscriber_t.c.status == options.status)
    if options.where:
        try:
            query = query.where(filter_sql(options.where, store.dialect))
        except ValueError as exc:
            raise ConfigError(f"--where: {exc}") from exc
    if ids is not None:
        query = query.where(subscriber_t.c.id > ids[0], subscriber_t.c.id <= ids[1])
    return query.order_by(subscriber_t.c.id)


def attribute_keys(conn: sa.Connection, query: sa.Select[Any]) -> list[str]:
    """Every attribute key of the exported rows, found by the database (sorted)."""
    sub = query.with_only_columns(subscriber_t.c.attributes).order_by(None).subquery()
    if conn.dialect.name == "postgresql":
        keys = sa.select(sa.func.jsonb_object_keys(sub.c.attributes).label("key")).subquery()
        stmt = sa.select(keys.c.key).distinct()
    else:
        each = sa.func.json_each(sub.c.attributes).table_valued("key")
        stmt = sa.select(each.c.key).select_from(sub).join(each, sa.true()).distinct()
    return sorted(str(k) for k in conn.execute(stmt).scalars())


def list_names(store: Store) -> dict[str, str]:
    """Every list's name by its id, as the export query writes ids (text)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(mailing_list_t.c.id, mailing_list_t.c.name))
        return {str(i): n for i, n in rows}


def id_span(store: Store) -> tuple[int, int]:
    """The lowest and highest subscriber id (0, 0 for none): both from the primary key."""
    with store.engine.connect() as conn:
        low, high = conn.execute(sa.select(sa.func.min(subscriber_t.c.id),
                                           sa.func.max(subscriber_t.c.id))).one()
    return (low or 0, high or 0)
