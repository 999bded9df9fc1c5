"""Shared fixtures: the store on SQLite *and* PostgreSQL, a loopback relay, a workspace.

PostgreSQL is expected at 127.0.0.1:5432 with trust auth and a database
``test`` (override with ``DISPATCHER_TEST_PG``). Its tests are never skipped:
if it is not there, they fail and say how to start it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dispatcher.cli import app
from dispatcher.store import Store
from dispatcher.store.database import create_engine, migrate
from tests.support.relay import RecordingRelay

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("DISPATCHER_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_HINT = (
    "PostgreSQL is required at 127.0.0.1:5432 (database 'test', trust auth); start it with "
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """One fresh schema for this test run, migrated once and dropped at the end."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{PG_HINT}\n{exc}")
    engine = create_engine(PG_URL, schema=schema)
    migrate(engine)
    engine.dispose()
    yield schema
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _truncate_all(store: Store) -> None:
    with store.engine.begin() as conn:
        tables = [
            r[0] for r in conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'"
            ))
        ]
        if tables:
            conn.execute(sa.text(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
            ))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL with an empty, migrated store; every store test runs on both."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    schema = request.getfixturevalue("pg_schema")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    cleaner = Store(create_engine(PG_URL, schema=schema))
    _truncate_all(cleaner)
    yield url
    cleaner.close()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def relay(request: pytest.FixtureRequest) -> Iterator[RecordingRelay]:
    """A recording SMTP relay on 127.0.0.1, port 0; options from ``@pytest.mark.relay(...)``."""
    marker = request.node.get_closest_marker("relay")
    options = dict(marker.kwargs) if marker else {}
    server = RecordingRelay(**options).start()
    yield server
    server.stop()


@pytest.fixture
def workspace(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example workspace, its store at ``store_url``."""
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("campaigns", "lists", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "dispatcher.toml", root / "dispatcher.toml")
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", store_url)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def imported(workspace: Path) -> Path:
    """The example workspace with its list imported."""
    result = CliRunner().invoke(app, ["import", "lists/weekly.csv", "--list", "weekly"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return workspace
