"""CSV export, streamed from the store so memory stays flat whatever the list size.

The columns are ``email, name, status, lists``, one column per attribute key
(sorted, so SQLite and PostgreSQL write the same file) or a single
``attributes`` JSON column, then ``created_at, updated_at``. The importer
reads every one of them back, so export → import into an empty store →
export gives the same file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa

from dispatcher.errors import ConfigError, NotFoundError
from dispatcher.lists.mapping import export_value
from dispatcher.store.audience import filter_sql
from dispatcher.store.database import Store
from dispatcher.store.models import SUBSCRIBER_STATES, MailingList, Membership, Subscriber
from dispatcher.store.subscribers import find_list

STATUSES = (*SUBSCRIBER_STATES, "all")
_s = Subscriber.__table__  # type: ignore[attr-defined]
_m = Membership.__table__  # type: ignore[attr-defined]
_l = MailingList.__table__  # type: ignore[attr-defined]


@dataclass
class ExportOptions:
    list_name: str | None = None
    status: str = "all"
    where: str | None = None
    attributes_json: bool = False


def _lists_column(dialect: str) -> Any:
    names = sa.select(_l.c.name).join(_m, _m.c.list_id == _l.c.id).where(
        _m.c.subscriber_id == _s.c.id, _m.c.status == "subscribed")
    if dialect == "postgresql":
        agg = sa.func.string_agg(_l.c.name, sa.literal_column("'|' ORDER BY mailing_list.name"))
    else:
        agg = sa.func.group_concat(_l.c.name, "|")
    return names.with_only_columns(agg).scalar_subquery().label("lists")


def export_query(store: Store, options: ExportOptions) -> sa.Select[Any]:
    if options.status not in STATUSES:
        raise ConfigError(f"--status {options.status!r}: expected one of {', '.join(STATUSES)}")
    # Raw column values (JSON text or a dict, timestamp text or a naive datetime): the
    # column types' per-row conversions cost more than the rest of the export together.
    query = sa.select(_s.c.id, _s.c.email, _s.c.name, _s.c.status, _lists_column(store.dialect),
                      sa.type_coerce(_s.c.attributes, sa.Text).label("attributes"),
                      sa.type_coerce(_s.c.created_at, sa.Text).label("created_at"),
                      sa.type_coerce(_s.c.updated_at, sa.Text).label("updated_at"))
    if options.list_name is not None:
        list_id = find_list(store, options.list_name)
        if list_id is None:
            raise NotFoundError(f"no list called {options.list_name!r}")
        query = query.where(_s.c.id.in_(sa.select(_m.c.subscriber_id).where(
            _m.c.list_id == list_id)))
    if options.status != "all":
        query = query.where(_s.c.status == options.status)
    if options.where:
        try:
            query = query.where(filter_sql(options.where, store.dialect))
        except ValueError as exc:
            raise ConfigError(f"--where: {exc}") from exc
    return query.order_by(_s.c.id)


def attribute_keys(store: Store, query: sa.Select[Any]) -> list[str]:
    """Every attribute key of the exported rows, found by the database (sorted)."""
    sub = query.order_by(None).subquery()
    if store.dialect == "postgresql":
        keys = sa.select(sa.func.jsonb_object_keys(sub.c.attributes).label("key")).subquery()
        stmt = sa.select(keys.c.key).distinct()
    else:
        each = sa.func.json_each(sub.c.attributes).table_valued("key")
        stmt = sa.select(each.c.key).select_from(sub).join(each, sa.true()).distinct()
    with store.engine.connect() as conn:
        return sorted(str(k) for k in conn.execute(stmt).scalars())


def _iso(value: str | datetime) -> str:
    """A stored UTC timestamp as ISO 8601 with offset, as ``datetime.isoformat`` writes it."""
    if isinstance(value, datetime):
        return value.isoformat() + "+00:00"
    text = value.replace(" ", "T", 1)
    return (text[:-7] if text.endswith(".000000") else text) + "+00:00"


def export_csv(store: Store, out: TextIO, list_name: str | None = None,
               options: ExportOptions | None = None,
               progress: Callable[[int], None] | None = None) -> int:
    """Write the chosen subscribers as CSV to ``out``; returns the number of rows."""
    options = options or ExportOptions(list_name=list_name)
    query = export_query(store, options)
    keys = [] if options.attributes_json else attribute_keys(store, query)
    writer = csv.writer(out, lineterminator="\n")
    middle = ["attributes"] if options.attributes_json else keys
    writer.writerow(["email", "name", "status", "lists", *middle, "created_at", "updated_at"])
    count = 0
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=5000).execute(query)
        for _id, email, name, status, lists, raw, created, updated in result:
            attrs = (json.loads(raw) if isinstance(raw, str) else raw) or {}
            if lists and "|" in lists:
                lists = "|".join(sorted(lists.split("|")))
            if options.attributes_json:
                values = [json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else ""]
            else:
                values = [export_value(attrs.get(k)) for k in keys]
            writer.writerow([email, name, status, lists or "", *values, _iso(created),
                             _iso(updated)])
            count += 1
            if progress is not None and count % 10000 == 0:
                progress(count)
    return count
