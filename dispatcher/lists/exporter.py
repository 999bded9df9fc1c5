"""CSV export, streamed from the store so memory stays flat whatever the list size.

The columns are ``email, name, status, lists``, one column per attribute key
(sorted, so SQLite and PostgreSQL write the same file) or a single
``attributes`` JSON column, then ``created_at, updated_at``. The importer
reads every one of them back, so export → import into an empty store →
export gives the same file.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
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
_BATCH = 5000
# Distinct list sets and timestamps remembered (imports stamp whole batches alike).
_MEMO = 10_000
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
    """The ids of the lists a subscriber is subscribed to, comma-separated, in any order.

    Ids rather than names: PostgreSQL's per-row ``string_agg`` of names joined from
    mailing_list cost more than the rest of the query; the exporter knows the names.
    """
    ids = sa.select(_m.c.list_id).where(_m.c.subscriber_id == _s.c.id,
                                        _m.c.status == "subscribed")
    if dialect == "postgresql":
        agg = sa.func.string_agg(sa.cast(_m.c.list_id, sa.Text), ",")
    else:
        agg = sa.func.group_concat(_m.c.list_id, ",")
    return ids.with_only_columns(agg).scalar_subquery().label("lists")


def export_query(store: Store, options: ExportOptions) -> sa.Select[Any]:
    if options.status not in STATUSES:
        raise ConfigError(f"--status {options.status!r}: expected one of {', '.join(STATUSES)}")
    # Raw column values (JSON text or a dict, timestamp text or a naive datetime): the
    # column types' per-row conversions cost more than the rest of the export together.
    # PostgreSQL sends the JSON as text too: psycopg's jsonb loader (json.loads per
    # row) cost as much as the whole query.
    attributes = (sa.cast(_s.c.attributes, sa.Text) if store.dialect == "postgresql"
                  else sa.type_coerce(_s.c.attributes, sa.Text))
    query = sa.select(_s.c.email, _s.c.name, _s.c.status, _lists_column(store.dialect),
                      attributes.label("attributes"),
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
    sub = query.with_only_columns(_s.c.attributes).order_by(None).subquery()
    if store.dialect == "postgresql":
        keys = sa.select(sa.func.jsonb_object_keys(sub.c.attributes).label("key")).subquery()
        stmt = sa.select(keys.c.key).distinct()
    else:
        each = sa.func.json_each(sub.c.attributes).table_valued("key")
        stmt = sa.select(each.c.key).select_from(sub).join(each, sa.true()).distinct()
    with store.engine.connect() as conn:
        return sorted(str(k) for k in conn.execute(stmt).scalars())


class _Memo(dict[Any, str]):
    """Text for a value, computed once for up to ``_MEMO`` distinct values."""

    def __init__(self, text: Callable[[Any], str]) -> None:
        super().__init__()
        self.text = text

    def __missing__(self, value: Any) -> str:
        text = self.text(value)
        if len(self) < _MEMO:
            self[value] = text
        return text


def _iso(value: str | datetime) -> str:
    """A stored UTC timestamp as ISO 8601 with offset, as ``datetime.isoformat`` writes it."""
    if isinstance(value, datetime):
        return value.isoformat() + "+00:00"
    text = value.replace(" ", "T", 1)
    return (text[:-7] if text.endswith(".000000") else text) + "+00:00"


def _int_text(text: str) -> str:
    return "0" if text == "-0" else text


def _float_text(text: str) -> str:
    return repr(float(text))


# Attributes decoded with their numbers left as the text export_value would write
# (repr of the parsed number), so most values need no Python per value at all.
# raw_decode: decode's two whitespace regular expressions per row cost a fifth as
# much again, and the stored JSON (json.dumps or jsonb text) never has any.
_decode_as_text = json.JSONDecoder(parse_int=_int_text, parse_float=_float_text).raw_decode
_AS_TEXT = {True: "true", False: "false", None: ""}.get


class _Rows:
    """The per-row text of the export: lists, attribute columns and timestamps."""

    def __init__(self, store: Store, keys: list[str], as_json: bool) -> None:
        self.store = store
        self.keys = keys
        self.as_json = as_json
        self.list_names: dict[str, str] = {}
        self.lists = _Memo(self._lists_text)
        self.stamps = _Memo(_iso)

    def _lists_text(self, ids: str | None) -> str:
        """'3,1' as 'archive|news': names sorted, so SQLite and PostgreSQL agree."""
        if not ids:
            return ""
        if any(i not in self.list_names for i in ids.split(",")):
            with self.store.engine.connect() as conn:
                self.list_names = {str(i): n for i, n in conn.execute(
                    sa.select(_l.c.id, _l.c.name))}
        return "|".join(sorted(self.list_names[i] for i in ids.split(",")))

    def attributes(self, raw: str | None) -> list[Any]:
        if self.as_json:
            attrs = json.loads(raw) if raw else None
            return [json.dumps(attrs, ensure_ascii=False, sort_keys=True) if attrs else ""]
        if not raw:
            return [""] * len(self.keys)
        try:
            attrs, end = _decode_as_text(raw)
            values = list(map(attrs.get, self.keys))
            if end == len(raw):
                return list(map(_AS_TEXT, values, values))
        except (TypeError, ValueError):  # a list or object value (written as JSON), odd text
            pass
        found = json.loads(raw).get
        return [export_value(found(k)) for k in self.keys]


class _Lines:
    """CSV lines as ``csv.writer`` writes them, at a fraction of its cost for plain rows.

    csv.writer took ~2.4 µs a row (a third of the export). A row none of whose
    fields holds a comma, a quote or a line break is written by csv.writer
    exactly as its fields joined with commas, so such rows are joined; the rest
    go through csv.writer itself.
    """

    def __init__(self, out: TextIO, width: int) -> None:
        self.out = out
        self.commas = width - 1
        self.lines: list[str] = []
        self._one = io.StringIO()
        # The line terminator decides which fields csv.writer quotes: the export's own.
        self._writer = csv.writer(self._one, lineterminator="\n")

    def add(self, fields: list[Any]) -> None:
        try:
            line = ",".join(fields)
        except TypeError:  # a None (written as "" by csv.writer)
            pass
        else:
            # Not "": csv.writer quotes a row of one empty field.
            if line and line.count(",") == self.commas and '"' not in line and "\n" not in line:
                self.lines.append(line)
                return
        self._writer.writerow(fields)
        self.lines.append(self._one.getvalue()[:-1])
        self._one.seek(0)
        self._one.truncate()

    def flush(self) -> None:
        if self.lines:
            self.lines.append("")
            self.out.write("\n".join(self.lines))
            self.lines.clear()


class _Prefetch:
    """The query's row batches, fetched in a thread one batch ahead of the writing.

    PostgreSQL's server computes the next batch (a server-side cursor FETCH)
    while Python formats this one, instead of each side waiting for the other:
    ~1.45x the export's wall rate in the benchmark (SQLite: no change either
    way). The thread has its own connection; at most two batches wait in the
    queue, so memory stays flat.
    """

    _DONE = object()

    def __init__(self, store: Store, query: sa.Select[Any]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fetch, args=(store, query),
                                        name="export-fetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fetch(self, store: Store, query: sa.Select[Any]) -> None:
        try:
            with (store.engine.connect() as conn,
                  conn.execution_options(stream_results=True,
                                         yield_per=_BATCH).execute(query) as result):
                for batch in result.partitions():
                    if not self._put(batch):
                        return
        except BaseException as exc:  # handed to the writing thread, raised there
            self._put(exc)
            return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[Sequence[Any]]:
        while (item := self._queue.get()) is not self._DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def __enter__(self) -> _Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        # Also when the writing failed half-way: the thread stops within a batch.
        self._stop.set()
        self._thread.join()


def export_csv(store: Store, out: TextIO, list_name: str | None = None,
               options: ExportOptions | None = None,
               progress: Callable[[int], None] | None = None) -> int:
    """Write the chosen subscribers as CSV to ``out``; returns the number of rows."""
    options = options or ExportOptions(list_name=list_name)
    query = export_query(store, options)
    with _Prefetch(store, query) as batches:
        keys = [] if options.attributes_json else attribute_keys(store, query)
        middle = ["attributes"] if options.attributes_json else keys
        header = ["email", "name", "status", "lists", *middle, "created_at", "updated_at"]
        lines = _Lines(out, len(header))
        lines.add(header)
        count = 0
        rows = _Rows(store, keys, options.attributes_json)
        lists, stamps, attributes = rows.lists, rows.stamps, rows.attributes
        for batch in batches:
            for email, name, status, ids, raw, created, updated in batch:
                lines.add([email, name, status, lists[ids], *attributes(raw), stamps[created],
                           stamps[updated]])
            lines.flush()
            if progress is not None:
                for done in range(count // 10000 + 1, (count + len(batch)) // 10000 + 1):
                    progress(done * 10000)
            count += len(batch)
    lines.flush()
    return count
