"""A large export cut into subscriber-id ranges, each read and written out by a worker process.

Formatting a row costs Python time (JSON decoding, CSV quoting) that one core
cannot make much smaller: one process topped out at ~130,000 rows/s. Worker
processes, each with its own database connection, format the ranges side by
side while this process writes their text in order. At most ``_WINDOW`` ranges
per worker are in flight, so memory stays flat whatever the export's size.

On PostgreSQL every worker reads in the snapshot this process exported
(``pg_export_snapshot``), so the ranges add up to one consistent export, as a
single query's would. SQLite has no shared snapshots: a row changed between
two ranges is read as it is when its range is read, and a row given a new
attribute key after the header was written stops the export with an error.

The workers are forked when this process has no other thread: they start at
once with every module already imported. With threads running, a fork could
copy a lock another thread holds, so they come from a fork server instead.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any

import sqlalchemy as sa

from dispatcher.errors import StoreError
from dispatcher.lists import export_sqlite
from dispatcher.lists.export_format import CsvLines, RowText
from dispatcher.lists.export_query import ExportOptions, attribute_keys, export_query, list_names
from dispatcher.store.database import Store, create_engine

_WINDOW = 2
_ROWS = 5000  # fetched at a time within a range
# The worker process's own store, opened once by the pool's initializer.
_store: Store | None = None


def id_ranges(span: tuple[int, int], chunk: int) -> list[tuple[int, int]]:
    """(after, upto] id ranges of ``chunk`` ids covering ``span`` (lowest, highest)."""
    low, high = span
    return [(after, min(after + chunk, high)) for after in range(low - 1, high, chunk)]


def shareable(store: Store) -> bool:
    """Whether another process can open this store: not an in-memory SQLite database."""
    url = store.engine.url
    return store.dialect == "postgresql" or (
        url.database not in (None, "", ":memory:") and "mode=memory" not in str(url))


def _open(url: str, schema: str | None) -> None:
    global _store
    _store = Store(create_engine(url, schema=schema), schema=schema)


@contextmanager
def _reading(snapshot: str | None) -> Iterator[tuple[Store, sa.Connection]]:
    """The worker's store and a connection that reads in ``snapshot`` when there is one."""
    if _store is None:
        raise RuntimeError("an export worker ran before its store was opened")
    with _store.engine.connect() as conn:
        if snapshot is not None:
            conn.execution_options(isolation_level="REPEATABLE READ")
            # A utility statement: it takes no parameters, hence the strict check.
            if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):
                raise ValueError(f"not a snapshot id: {snapshot!r}")
            conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        yield _store, conn


def _range_keys(options: ExportOptions, snapshot: str | None,
                ids: tuple[int, int]) -> list[str]:
    with _reading(snapshot) as (store, conn):
        return attribute_keys(conn, export_query(store, options, ids))


def _range_text(options: ExportOptions, snapshot: str | None, keys: Sequence[str],
                since: datetime, ids: tuple[int, int]) -> tuple[str, int]:
    with _reading(snapshot) as (store, conn):
        if export_sqlite.usable(store, options, keys):
            parts = list(export_sqlite.texts(store, conn, options, keys, ids, since, _ROWS))
            return "".join(text for text, _ in parts), sum(rows for _, rows in parts)
        # The driver's own tuples: the columns need no conversion, and building
        # SQLAlchemy rows cost 6% of the range's instructions (callgrind).
        rows = conn.execute(export_query(store, options, ids)).cursor.fetchall()
    lines = CsvLines(6 + (1 if options.attributes_json else len(keys)))
    lines.add_rows(rows, RowText(keys, options.attributes_json, partial(list_names, store)))
    return lines.text(), len(rows)


class ExportPool:
    """Worker processes that read and format the export's id ranges."""

    def __init__(self, store: Store, workers: int) -> None:
        method = "fork" if threading.active_count() == 1 else "forkserver"
        url = store.engine.url.render_as_string(hide_password=False)
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context(method), initializer=_open,
            initargs=(url, store.schema))
        self._held: sa.Connection | None = None
        self.snapshot: str | None = None
        if store.dialect == "postgresql":
            try:
                # Held open to the end: an exported snapshot lives as long as its transaction.
                self._held = store.engine.connect()
                self._held.execution_options(isolation_level="REPEATABLE READ")
                self.snapshot = self._held.execute(
                    sa.text("SELECT pg_export_snapshot()")).scalar_one()
            except BaseException:
                self.__exit__()
                raise

    def keys(self, options: ExportOptions, ranges: Sequence[tuple[int, int]]) -> list[str]:
        found: set[str] = set()
        try:
            for keys in self._pool.map(partial(_range_keys, options, self.snapshot), ranges):
                found.update(keys)
        except BrokenProcessPool:
            raise StoreError("an export worker process was killed (out of memory?): "
                             "nothing was exported, run it again") from None
        return sorted(found)

    def texts(self, options: ExportOptions, keys: Sequence[str],
              ranges: Sequence[tuple[int, int]], since: datetime) -> Iterator[tuple[str, int]]:
        """Each range's CSV text and row count, in id order."""
        pending: deque[Future[tuple[str, int]]] = deque()
        try:
            for ids in ranges:
                pending.append(self._pool.submit(_range_text, options, self.snapshot, keys, since,
                                                 ids))
                if len(pending) >= self.workers * _WINDOW:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise StoreError("an export worker process was killed (out of memory?): "
                             "the export is incomplete, run it again") from None
        finally:
            for future in pending:
                future.cancel()

    def __enter__(self) -> ExportPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._held is not None:
            self._held.close()
