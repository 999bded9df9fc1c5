"""Opening the store: engine, connection settings and schema migrations.

SQLite (a file in the workspace) is the default; PostgreSQL is the store for
many workers on many machines. Every open brings the schema up to date with
Alembic, so a store made by an older dispatcher keeps working.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from dispatcher.errors import StoreError
from dispatcher.store.models import Setting

if TYPE_CHECKING:
    from alembic.config import Config

DEFAULT_URL = "sqlite:///dispatcher.db"
# The newest revision of each branch in migrations/versions (tests/test_store.py checks
# it against Alembic's own reading). A store already there is opened without Alembic,
# whose import cost every command ~0.1 s.
SCHEMA_HEADS = frozenset({"0005", "0006", "0007", "0008b"})


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("dispatcher.store") / "migrations"))
    return cfg


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the dashboard read while a sender writes; busy_timeout makes
    # concurrent writers wait instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_engine(url: str, *, schema: str | None = None) -> Engine:
    """An engine for ``url``; ``schema`` pins PostgreSQL's search_path (tests use it)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (all heads), in one transaction."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two workers starting together must not both create the tables.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7164001)"))
        if sa.inspect(conn).has_table("alembic_version") and set(conn.execute(
                sa.text("SELECT version_num FROM alembic_version")).scalars()) == SCHEMA_HEADS:
            return
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        current = set(MigrationContext.configure(conn).get_current_heads())
        cfg = _alembic_config()
        script = ScriptDirectory.from_config(cfg)
        heads = set(script.get_heads())
        unknown = current - {rev.revision for rev in script.walk_revisions()}
        if unknown:
            raise StoreError(
                "the store was written by a newer dispatcher "
                f"(revision {', '.join(sorted(unknown))})"
            )
        if current != heads:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")


class Store:
    """The database every part of dispatcher shares.

    Hot paths (bulk import, claiming, recording outcomes) use SQLAlchemy Core
    on :attr:`engine`; everything else uses :meth:`session` with the models.
    """

    def __init__(self, engine: Engine, *, schema: str | None = None) -> None:
        self.engine = engine
        # Kept so that another process (an export's workers) can open the same store.
        self.schema = schema
        self._secret: bytes | None = None

    @classmethod
    def open(cls, url: str = DEFAULT_URL, *, schema: str | None = None) -> Store:
        engine = create_engine(url, schema=schema)
        try:
            migrate(engine)
        except sa.exc.OperationalError as exc:
            engine.dispose()
            raise StoreError(f"cannot open the store at {engine.url!r}: {exc.orig}") from exc
        except BaseException:
            # A store from a newer dispatcher, say: its pooled connection closed now, not
            # left to the garbage collector.
            engine.dispose()
            raise
        return cls(engine, schema=schema)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def secret(self) -> bytes:
        """The store-wide signing secret, made on first use and shared by every worker."""
        if self._secret is None:
            with self.session() as s:
                row = s.get(Setting, "secret")
                if row is None:
                    row = Setting(key="secret", value=secrets.token_hex(32))
                    s.add(row)
                    try:
                        s.commit()
                    except sa.exc.IntegrityError:
                        s.rollback()
                        row = s.get(Setting, "secret")
                        assert row is not None
            self._secret = bytes.fromhex(row.value)
        return self._secret

    def close(self) -> None:
        self.engine.dispose()
