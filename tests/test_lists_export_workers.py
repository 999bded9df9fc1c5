"""A large export formatted by worker processes writes exactly what one process writes."""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.errors import StoreError
from dispatcher.lists import export_sqlite, exporter
from dispatcher.lists.export_format import RowText
from dispatcher.lists.export_query import export_query, id_span
from dispatcher.lists.export_workers import ExportPool, id_ranges, shareable
from dispatcher.lists.exporter import ExportOptions, export_csv
from dispatcher.store import Store
from dispatcher.store.models import Subscriber
from dispatcher.store.tables import mailing_list_t, membership_t, subscriber_t
from tests.test_lists_export import load_fixtures


class _CountedPool(ExportPool):
    made = 0

    def __init__(self, store: Store, workers: int) -> None:
        type(self).made += 1
        super().__init__(store, workers)


def _export(store: Store, workers: int, **options: Any) -> str:
    out = io.StringIO()
    export_csv(store, out, options=ExportOptions(**options), workers=workers, chunk=2)
    return out.getvalue()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> type[_CountedPool]:
    _CountedPool.made = 0
    monkeypatch.setattr(exporter, "ExportPool", _CountedPool)
    return _CountedPool


@pytest.mark.parametrize("options", [
    {}, {"list_name": "listmonk"}, {"status": "bounced"}, {"where": "age >= 9"},
    {"attributes_json": True}, {"list_name": "mailchimp", "attributes_json": True},
])
def test_workers_write_what_one_process_writes(
        store: Store, tmp_path: Path, counted: type[_CountedPool], options: dict[str, Any]) -> None:
    load_fixtures(store, tmp_path)
    one = _export(store, 1, **options)
    assert counted.made == 0
    assert _export(store, 2, **options) == one
    assert counted.made == 1
    assert len(one.splitlines()) > 1


def test_workers_come_from_a_fork_server_when_threads_run(
        store: Store, tmp_path: Path, counted: type[_CountedPool]) -> None:
    load_fixtures(store, tmp_path)
    one = _export(store, 1)
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert _export(store, 2) == one
    finally:
        release.set()
        other.join()
    assert counted.made == 1


def test_a_failed_write_stops_the_workers(store: Store, tmp_path: Path) -> None:
    load_fixtures(store, tmp_path)

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            if self.tell():
                raise OSError(28, "No space left on device")
            return super().write(text)

    with pytest.raises(OSError, match="No space"):
        export_csv(store, Full(), workers=2, chunk=2)
    assert multiprocessing.active_children() == []


def test_a_key_the_header_lacks_stops_the_export() -> None:
    text = RowText(["a"], as_json=False, load_names=dict)
    assert text.attributes('{"a": 1}') == ["1"]
    for raw in ('{"a": 1, "b": 2}', '{"a": 1, "b": [2]}'):
        with pytest.raises(StoreError, match="attribute 'b' appeared"):
            text.attributes(raw)


def test_ranges_cover_every_id_once() -> None:
    assert id_ranges((1, 10), 4) == [(0, 4), (4, 8), (8, 10)]
    assert id_ranges((5, 5), 4) == [(4, 5)]
    covered = [i for after, upto in id_ranges((3, 1000), 7) for i in range(after + 1, upto + 1)]
    assert covered == list(range(3, 1001))


def test_only_a_store_on_disk_or_a_server_is_shared_with_workers(store: Store) -> None:
    assert shareable(store)
    memory = Store.open("sqlite://")
    assert not shareable(memory)
    memory.close()


def test_a_list_export_reads_one_id_range_of_members_at_a_time(
        store: Store, tmp_path: Path) -> None:
    """Each range's query searches members by id, not the whole list once per range."""
    load_fixtures(store, tmp_path)
    query = export_query(store, ExportOptions(list_name="listmonk"), ids=(2, 4))
    with store.engine.begin() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(
            ("EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN ") + sql))
    if store.dialect == "postgresql":
        assert "subscriber_id > 2" in plan and "subscriber_id <= 4" in plan
    else:
        assert "(list_id=? AND subscriber_id>? AND subscriber_id<?)" in plan


def test_on_postgresql_the_workers_read_one_snapshot(store: Store, tmp_path: Path) -> None:
    load_fixtures(store, tmp_path)
    options = ExportOptions()
    ranges = id_ranges(id_span(store), 2)
    with ExportPool(store, 2) as pool:
        with store.engine.begin() as conn:
            conn.execute(sa.update(Subscriber).where(Subscriber.email == "kim@example.net")
                         .values(attributes={"late": "yes"}))
        keys = pool.keys(options, ranges)
        text = "".join(part for part, _ in pool.texts(options, keys, ranges, datetime.now(UTC)))
    kim = next(line for line in text.splitlines() if line.startswith("kim@example.net,"))
    if store.dialect == "postgresql":
        assert "late" not in keys and ",yes," not in kim
    else:  # no shared snapshot: each range is read when its turn comes
        assert "late" in keys and ",yes," in kim


def test_a_killed_worker_is_a_clear_error(store: Store, tmp_path: Path) -> None:
    load_fixtures(store, tmp_path)
    ranges = id_ranges(id_span(store), 2)
    with ExportPool(store, 2) as pool:
        keys = pool.keys(ExportOptions(), ranges)
        for pid in list(pool._pool._processes or ()):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(StoreError, match="worker process was killed"):
            list(pool.texts(ExportOptions(), keys, ranges, datetime.now(UTC)))
    assert multiprocessing.active_children() == []


_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.sampled_from('ab,"\n\r é[]{}\\|'), max_size=5),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.sampled_from("xy"), st.booleans()))
_ROW = st.tuples(st.text(alphabet=st.sampled_from('ab ,"é'), max_size=4),
                 st.dictionaries(st.sampled_from(["a", "b.c", "é", "sp ace", "n"]), _VALUE),
                 st.sets(st.sampled_from([1, 2])), st.booleans())


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[Store]:
    shutil.copy(sqlite_template, tmp_path / "store.db")
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    with store.engine.begin() as conn:
        conn.execute(sa.insert(mailing_list_t), [
            {"id": 1, "name": "news", "created_at": datetime.now(UTC)},
            {"id": 2, "name": "Zeta, \"co\"", "created_at": datetime.now(UTC)}])
    yield store
    store.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_ROW, min_size=1, max_size=8))
def test_sqlite_writes_every_line_as_the_general_path_does(
        sqlite_store: Store, monkeypatch: pytest.MonkeyPatch,
        rows: list[tuple[str, dict[str, Any], set[int], bool]]) -> None:
    with sqlite_store.engine.begin() as conn:
        conn.execute(sa.delete(membership_t))
        conn.execute(sa.delete(subscriber_t))
        for i, (name, attributes, lists, whole_second) in enumerate(rows):
            stamp = datetime(2026, 1, 2, 3, 4, 5, 0 if whole_second else 678, tzinfo=UTC)
            conn.execute(sa.insert(Subscriber).values(
                email=f"u{i}@example.com", name=name, attributes=attributes, status="active",
                created_at=stamp, updated_at=stamp))
            sid = conn.execute(sa.select(subscriber_t.c.id).where(
                subscriber_t.c.email == f"u{i}@example.com")).scalar_one()
            for n in lists:
                conn.execute(sa.insert(membership_t).values(
                    list_id=n, subscriber_id=sid, status="subscribed", created_at=stamp))
    fast = _export(sqlite_store, 1)
    with monkeypatch.context() as patched:
        patched.setattr(export_sqlite, "usable", lambda *_: False)
        assert fast == _export(sqlite_store, 1)
