"""The store opens, migrates idempotently and round-trips values on both databases."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from dispatcher.errors import StoreError
from dispatcher.store import Store
from dispatcher.store.database import SCHEMA_HEADS, _alembic_config, create_engine
from dispatcher.store.models import Subscriber


def test_reopen_keeps_data_and_secret(store_url: str) -> None:
    first = Store.open(store_url)
    secret = first.secret()
    with first.session() as s:
        s.add(Subscriber(email="ana@example.com", name="Ana", attributes={"city": "Köln", "n": 3}))
    first.close()

    second = Store.open(store_url)
    assert second.secret() == secret
    with second.session() as s:
        row = s.exec(select(Subscriber)).one()
    assert row.attributes == {"city": "Köln", "n": 3}
    assert row.created_at.tzinfo is UTC
    second.close()


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"), store.session() as s:
        s.add(Subscriber(email="b@example.com", created_at=datetime(2026, 1, 1)))


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_the_schema_heads_are_alembic_s() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    assert set(script.get_heads()) == SCHEMA_HEADS


def test_an_older_store_is_brought_up_to_date(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    assert not sa.inspect(engine).has_table("stats_watermark")
    engine.dispose()
    store = Store.open(url)
    with store.engine.connect() as conn:
        versions = set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
        assert sa.inspect(conn).has_table("stats_watermark")
    store.close()
    assert versions == SCHEMA_HEADS


def test_a_store_from_a_newer_dispatcher_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    Store.open(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0009' "
                             "WHERE version_num = '0008b'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"written by a newer dispatcher \(revision 0009\)"):
        Store.open(url)
    # Its connection is closed, not left for the garbage collector (Python 3.13 warns).
    assert str(tmp_path / "new.db") not in _open_files()


def _open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since the listing
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found
