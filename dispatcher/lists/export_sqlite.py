"""SQLite exports: most of each CSV line is put together by SQLite itself.

Per row, Python's part of the general path (JSON decoding, one text per value,
quoting checks) cost about 2.4 times as much CPU as SQLite building the same
line from the stored JSON (970,623 rows: 20 s against 8.2 s). So SQLite
writes each line but its list names; a line that might need CSV quoting, or a
row changed since the export began, is written by the general path instead
(:class:`.export_format.RowText`), so every line is still exactly what that
path writes. Arrays and objects need no check of their own: SQLite keeps their
tokens too, and one that json.dumps would write differently (``[1, 2]``, any
key or string) has a comma or a quote, so its line goes the general way.

SQLite's ``->`` gives a number as the token stored, which is ``repr`` of the
number, as the general path writes it, because the store's JSON comes from
``json.dumps``. PostgreSQL's jsonb keeps no tokens (``1e+16`` reads back as
``10000000000000000``), so PostgreSQL exports take the general path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa

from dispatcher.lists.export_format import CsvLines, RowText, plain_line
from dispatcher.lists.export_query import ExportOptions, export_query, list_names
from dispatcher.store.database import Store
from dispatcher.store.tables import membership_t, subscriber_t

# ``->`` came with SQLite 3.38.
_ARROW = (3, 38, 0)


def usable(store: Store, options: ExportOptions, keys: Sequence[str]) -> bool:
    """Whether this export can take the SQLite path.

    Only for keys a JSON path matches as they are: SQLite compares a path's label
    with the key as stored, and json.dumps stores "é" as "\\u00e9".
    """
    return (store.dialect == "sqlite" and not options.attributes_json
            and sqlite3.sqlite_version_info >= _ARROW
            and all(k.isascii() and k.isprintable() and '"' not in k and "\\" not in k
                    for k in keys))


def _iso(column: Any) -> Any:
    """A stored timestamp as ``export_format._iso`` writes it: 'T', no zero micros, +00:00."""
    text = sa.type_coerce(column, sa.Text)
    trimmed = sa.case((text.like("%.000000"), sa.func.substr(text, 1, sa.func.length(text) - 7)),
                      else_=text)
    return sa.func.replace(trimmed, " ", "T") + "+00:00"


def _value(attributes: Any, key: str) -> Any:
    """The attribute's CSV text: a string as it is, a number as stored, null as ''."""
    path = f'$."{key}"'
    # CASE x WHEN ...: x (a JSON lookup, the query's main cost) is computed once.
    return sa.func.coalesce(sa.case(
        {"text": sa.func.json_extract(attributes, path), "null": ""},
        value=sa.func.json_type(attributes, path), else_=attributes.op("->")(path)), "")


def _joined(parts: Sequence[Any]) -> Any:
    """``a || ',' || b ...`` (concat_ws only came with SQLite 3.44)."""
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.op("||")(",").op("||")(part)
    return joined


def lines_query(store: Store, options: ExportOptions, keys: Sequence[str],
                ids: tuple[int, int] | None, since: datetime) -> sa.Select[Any]:
    """(id, email,name,status; list ids; values,created_at,updated_at) per exported row.

    The last part is NULL for a row updated since ``since``: its attributes may have
    gained a key the header lacks, which the general path refuses to drop silently.
    """
    s = subscriber_t.c
    attributes = sa.type_coerce(s.attributes, sa.Text)
    head = s.email + "," + sa.func.coalesce(s.name, "") + "," + s.status
    tail = _joined([*(_value(attributes, k) for k in keys), _iso(s.created_at),
                    _iso(s.updated_at)])
    ids_text = (sa.select(sa.func.group_concat(membership_t.c.list_id, ","))
                .where(membership_t.c.subscriber_id == s.id,
                       membership_t.c.status == "subscribed").scalar_subquery())
    fresh = sa.case((s.updated_at > since, sa.null()), else_=tail)
    return export_query(store, options, ids).with_only_columns(s.id, head, ids_text, fresh)


def texts(store: Store, conn: sa.Connection, options: ExportOptions, keys: Sequence[str],
          ids: tuple[int, int] | None, since: datetime,
          batch: int) -> Iterator[tuple[str, int]]:
    """The CSV text of the exported rows, ``batch`` rows at a time, and how many rows."""
    general = RowText(keys, False, partial(list_names, store))
    lists = general.lists
    width = 6 + len(keys)
    result = conn.execute(lines_query(store, options, keys, ids, since)).cursor
    while rows := result.fetchmany(batch):
        lines: list[str | None] = []
        redo: dict[int, int] = {}
        for row_id, head, list_ids, tail in rows:
            if tail is not None:
                line = f"{head},{lists[list_ids]},{tail}"
                if plain_line(line, width):
                    lines.append(line)
                    continue
            redo[row_id] = len(lines)
            lines.append(None)
        if redo:
            _fill(lines, redo, store, conn, options, general, width)
        lines.append("")
        yield "\n".join(lines), len(rows)  # type: ignore[arg-type]  # every None is filled


def _fill(lines: list[str | None], redo: dict[int, int], store: Store, conn: sa.Connection,
          options: ExportOptions, general: RowText, width: int) -> None:
    """Write the rows of ``redo`` (id → place in ``lines``) by the general path."""
    query = export_query(store, options).where(subscriber_t.c.id.in_(redo))
    rows = conn.execute(query.add_columns(subscriber_t.c.id)).all()
    one = CsvLines(width)
    for row in rows:
        one.add_rows([row[:7]], general)
        lines[redo[row[7]]] = one.text()[:-1]

