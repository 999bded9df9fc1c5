"""The store: SQLite by default, PostgreSQL for many workers."""

from dispatcher.store.database import DEFAULT_URL, Store

__all__ = ["DEFAULT_URL", "Store"]
