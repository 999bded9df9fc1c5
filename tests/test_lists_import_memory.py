"""A file's duplicates are merged the same once the addresses seen no longer fit in memory."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from dispatcher.errors import StoreError
from dispatcher.lists import importer
from dispatcher.lists.importer import ImportOptions, ImportReport, import_file
from dispatcher.lists.seen import SeenAddresses
from dispatcher.store import Store
from dispatcher.store.models import Suppression
from dispatcher.store.subscribers import suppression_hash
from tests.test_lists_import import rejects, seed, subscribers


def test_addresses_move_to_disk_past_the_budget_and_are_still_found() -> None:
    seen = SeenAddresses(budget=250)
    for email in ("a@example.com", "b@example.com"):
        seen.recent[email] = None
    assert seen.earlier(["a@example.com", "b@example.com"]) == set()
    assert list(seen.recent) == ["a@example.com", "b@example.com"]  # within the budget
    seen.recent["c@example.com"] = None
    assert seen.earlier(["c@example.com"]) == set()
    assert seen.recent == {}  # past it: on disk, the dict emptied
    for email in ("b@example.com", "d@example.com", "c@example.com"):
        seen.recent[email] = None
    assert seen.earlier(["b@example.com", "d@example.com", "c@example.com"]) == {
        "b@example.com", "c@example.com"}
    seen.recent["d@example.com"] = None
    assert seen.earlier(["d@example.com"]) == {"d@example.com"}
    seen.close()


def _messy_file(path: Path) -> None:
    """Repeats within and across batches, invalid rows, a known and a suppressed address."""
    rng = random.Random(3)
    lines = ["email,first_name,n"]
    for i in range(600):
        roll = rng.random()
        if roll < 0.05:
            email = f"broken{i}"
        elif roll < 0.08:
            email = "left@example.com"
        elif roll < 0.10:
            email = "Erased@Example.com"
        elif roll < 0.35 and i:
            email = f"User{rng.randrange(i)}@example.com"
        else:
            email = f"user{i}@example.com"
        lines.append(f"{email},Name{i},{i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _run(store: Store, path: Path, **options: int) -> tuple[ImportReport, list[list[str]]]:
    seed(store, "left@example.com", status="unsubscribed")
    with store.engine.begin() as conn:
        conn.execute(sa.insert(Suppression).values(
            email_hash=suppression_hash("erased@example.com"), reason="erased"))
    report = import_file(store, path, ImportOptions(list_name="l", **options))
    return report, rejects(path)


def test_an_import_past_its_memory_budget_counts_and_writes_the_same(
        store: Store, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _messy_file(tmp_path / "a" / "list.csv")
    shutil.copy(tmp_path / "a" / "list.csv", tmp_path / "b" / "list.csv")
    reference = Store.open(f"sqlite:///{tmp_path / 'reference.db'}")
    expected, expected_rejects = _run(reference, tmp_path / "a" / "list.csv", batch=7)
    expected_rows = subscribers(reference)
    reference.close()
    # A budget of one byte: every address moves to disk after the first batch.
    got, got_rejects = _run(store, tmp_path / "b" / "list.csv", batch=7, seen_memory=1)
    assert got.duplicates > 100 and expected.added > 300
    assert {k: v for k, v in got.as_dict().items() if k not in ("file", "rejects_file")} == {
        k: v for k, v in expected.as_dict().items() if k not in ("file", "rejects_file")}
    assert got_rejects == expected_rejects
    assert subscribers(store) == expected_rows


class _SmallDisk(SeenAddresses):
    """A temporary database that fills up after its first pages, as on a full disk."""

    def _spill(self) -> sqlite3.Connection:
        db = super()._spill()
        db.execute("PRAGMA max_page_count = 4")
        return db


def test_a_full_temporary_disk_stops_the_import_clearly_and_a_rerun_finishes_it(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long.csv"
    path.write_text("email\n" + "".join(f"someone.with.a.long.name.{i}@example.com\n"
                                        for i in range(3000)), encoding="utf-8")
    monkeypatch.setattr(importer, "SeenAddresses", _SmallDisk)
    with pytest.raises(StoreError, match="cannot keep the addresses already read on disk "
                                         r"\(database or disk is full\)"):
        import_file(store, path, ImportOptions(list_name="l", batch=50, seen_memory=1))
    kept = len(subscribers(store))
    assert 0 < kept < 3000
    monkeypatch.undo()
    report = import_file(store, path, ImportOptions(list_name="l"))
    assert (report.added, report.unchanged, report.duplicates) == (3000 - kept, kept, 0)
    assert len(subscribers(store)) == 3000
