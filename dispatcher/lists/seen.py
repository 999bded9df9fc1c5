"""The addresses an import has already taken from its file, in bounded memory.

A later copy of an address in the same file is merged into the first one (counted as
a duplicate, never written twice), so the import remembers every address it took.
Kept in a dict, 2.9 million addresses took ~350 MB and the import's peak RSS grew with
the file (480 MB at 3 million rows). Up to ``budget`` bytes they stay in the dict, the
fast path of every list smaller than about a million; past it they move to a private
temporary SQLite database, which SQLite deletes when it is closed and whose page cache
is bounded, so a file of any size imports in the same memory.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

from dispatcher.errors import StoreError

# ~120 MB holds a million addresses of ~20 characters.
MEMORY_BUDGET = 150 * 1024 * 1024
# What one address costs in the dict besides its characters: the str object's header
# and the dict's entry and index slots.
_OVERHEAD = 100
# SQLite's page cache for the spilled addresses, in KiB (a negative cache_size).
_CACHE_KIB = 16 * 1024


class SeenAddresses:
    """Which addresses came earlier in the file.

    ``recent`` is for the per-row check (``email in recent``, then add it): until the
    budget is spent it holds every address, after that only the current batch's, and
    :meth:`earlier` tells which of a batch's addresses an earlier batch already took.
    """

    def __init__(self, budget: int = MEMORY_BUDGET) -> None:
        # str keys and None values: the garbage collector does not track the dict, where
        # a set of a million addresses would be walked at every full pass.
        self.recent: dict[str, None] = {}
        self._budget = budget
        self._used = 0
        self._db: sqlite3.Connection | None = None

    def earlier(self, batch: Sequence[str]) -> set[str]:
        """The addresses of ``batch`` (all in ``recent``) that an earlier batch took.

        Raises :class:`StoreError` when the temporary database cannot be written (a full
        disk): the batches written so far are kept, and the same import run again goes on.
        """
        try:
            return self._earlier(batch)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot keep the addresses already read on disk ({exc}): free space in "
                "SQLite's temporary folder (SQLITE_TMPDIR, else /var/tmp or /tmp) and run the "
                "same import again; what was imported is kept") from exc

    def _earlier(self, batch: Sequence[str]) -> set[str]:
        if self._db is None:
            self._used += sum(map(len, batch)) + _OVERHEAD * len(batch)
            if self._used > self._budget:
                self._db = self._spill()
            return set()
        found = {email for (email,) in self._db.execute(
            "SELECT email FROM seen WHERE email IN (SELECT value FROM json_each(?))",
            (json.dumps(batch),))}
        self._add(self._db, (email for email in batch if email not in found))
        self.recent.clear()
        return found

    def _spill(self) -> sqlite3.Connection:
        # "": a private temporary database on disk, deleted on close. No journal: it is
        # never read after a crash.
        db = sqlite3.connect("", isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            db.execute("CREATE TABLE seen (email TEXT PRIMARY KEY) WITHOUT ROWID")
            # Sorted, the B-tree is filled page by page rather than at random.
            self._add(db, iter(sorted(self.recent)))
        except BaseException:
            db.close()  # a full disk here: nothing is kept of it
            raise
        self.recent.clear()
        return db

    @staticmethod
    def _add(db: sqlite3.Connection, emails: Iterator[str]) -> None:
        with db:  # a failed insert is rolled back, not left half-done for the next batch
            db.execute("BEGIN")
            db.executemany("INSERT INTO seen (email) VALUES (?)",
                           ((email,) for email in emails))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
