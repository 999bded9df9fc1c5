"""The store opens, migrates idempotently and round-trips values on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from dispatcher.errors import StoreError
from dispatcher.store import Store
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
