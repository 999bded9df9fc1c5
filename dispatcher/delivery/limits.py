"""Rate limits held in the store, so they hold across workers, machines and restarts.

* Pacing (messages per second) is GCRA on one ``rate_slot`` row per key: a
  worker reserves a run of slots with one atomic upsert and sends each at its
  slot time. Workers interleave their runs, so the total rate is smooth.
* Quotas (per minute/hour/day) are counts in ``rate_counter`` per window; a
  worker takes a chunk of the quota with a conditional UPDATE that can never
  push a count past its limit, whatever other workers do at the same moment.
  A crash loses at most the unused part of a chunk (counted as used: a daily
  cap errs on the safe side).
* A key's adaptive throttle (:class:`dispatcher.core.rates.Throttle`) is kept
  on the same ``rate_slot`` row, so every worker slows down together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dispatcher.core.rates import Reservation, Throttle, grantable, window_start
from dispatcher.store.database import Store
from dispatcher.store.rate_tables import rate_slot
from dispatcher.store.tables import rate_counter_t

_KEEP = timedelta(days=2)


class SharedLimits:
    """Store-backed pacing, quotas and throttles; ``clock`` gives epoch seconds."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_*`` (SQLite and PostgreSQL alike)."""
        return (postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert)(table)

    def reserve(self, key: str, rate: float, count: int, *, burst: float = 0.0) -> Reservation:
        """Reserve ``count`` consecutive slots of ``rate``/s for ``key`` (atomic across workers)."""
        now = self.clock()
        interval = 1.0 / rate
        floor = now - burst
        span = count * interval
        greatest = sa.func.greatest if self.store.dialect == "postgresql" else sa.func.max
        statement = (self._insert(rate_slot)
                     .values(key=key, tat=floor + span, factor=1.0, suspended_until=0.0)
                     .on_conflict_do_update(index_elements=["key"],
                                            set_={"tat": greatest(rate_slot.c.tat, floor) + span})
                     .returning(rate_slot.c.tat))
        with self.store.engine.begin() as conn:
            tat = float(conn.execute(statement).scalar_one())
        return Reservation(tat - span, interval, count, tat)

    def throttle(self, key: str) -> Throttle:
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(rate_slot.c.factor, rate_slot.c.throttled_at,
                                         rate_slot.c.suspended_until)
                               .where(rate_slot.c.key == key)).first()
        return Throttle() if row is None else Throttle(row.factor, row.throttled_at,
                                                       row.suspended_until)

    def slow_down(self, key: str, suspend: float, *, hint: str = "") -> Throttle:
        """Record a "slow down" reply for ``key``: lower its rate and suspend it."""
        now = self.clock()
        with self.store.engine.begin() as conn:
            conn.execute(self._insert(rate_slot).values(
                key=key, tat=0.0, factor=1.0, suspended_until=0.0
            ).on_conflict_do_nothing(index_elements=["key"]))
            if self.store.dialect == "postgresql":
                conn.execute(sa.text("SELECT 1 FROM rate_slot WHERE key = :k FOR UPDATE"),
                             {"k": key})
            row = conn.execute(sa.select(rate_slot.c.factor, rate_slot.c.throttled_at,
                                         rate_slot.c.suspended_until)
                               .where(rate_slot.c.key == key)).one()
            new = Throttle(row.factor, row.throttled_at, row.suspended_until).slow_down(
                now, suspend, hint=hint)
            conn.execute(rate_slot.update().where(rate_slot.c.key == key).values(
                factor=new.factor, throttled_at=new.throttled_at,
                suspended_until=new.suspended_until))
        return new

    def take(self, key: str, windows: dict[str, int], wanted: int,
             now: datetime | None = None) -> int:
        """Take up to ``wanted`` messages from ``key``'s quotas; returns how many were granted."""
        if not windows or wanted <= 0:
            return wanted
        now = now or datetime.fromtimestamp(self.clock(), UTC)
        starts = {w: window_start(now, w) for w in windows}
        for _ in range(4):
            with self.store.engine.begin() as conn:
                self._ensure(conn, key, starts, now)
                if self._add(conn, key, starts, windows, wanted):
                    return wanted
                conn.rollback()
            with self.store.engine.connect() as conn:
                counts = {str(w): int(c) for w, c in conn.execute(
                    sa.select(rate_counter_t.c.window, rate_counter_t.c.count).where(
                        rate_counter_t.c.key == key,
                        sa.or_(*(sa.and_(rate_counter_t.c.window == w,
                                         rate_counter_t.c.started_at == s)
                                 for w, s in starts.items()))))}
            wanted = grantable(counts, windows, wanted)
            if wanted == 0:
                return 0
        return 0

    def _ensure(self, conn: Connection, key: str, starts: dict[str, datetime],
                now: datetime) -> None:
        for window, start in starts.items():
            added = conn.execute(self._insert(rate_counter_t).values(
                key=key, window=window, started_at=start, count=0
            ).on_conflict_do_nothing(index_elements=["key", "window", "started_at"])
                .execution_options(preserve_rowcount=True))
            if added.rowcount > 0:
                # A new window began: old ones of this key are history.
                conn.execute(rate_counter_t.delete().where(
                    rate_counter_t.c.key == key, rate_counter_t.c.window == window,
                    rate_counter_t.c.started_at < now - _KEEP))

    @staticmethod
    def _add(conn: Connection, key: str, starts: dict[str, datetime], windows: dict[str, int],
             count: int) -> bool:
        for window, start in starts.items():
            done = conn.execute(rate_counter_t.update().where(
                rate_counter_t.c.key == key, rate_counter_t.c.window == window,
                rate_counter_t.c.started_at == start,
                rate_counter_t.c.count + count <= windows[window],
            ).values(count=rate_counter_t.c.count + count))
            if not done.rowcount:
                return False
        return True

    def give_back(self, key: str, windows: dict[str, int], count: int) -> None:
        """Return quota taken but not used (a run ends with part of a chunk left)."""
        if not windows or count <= 0:
            return
        now = datetime.fromtimestamp(self.clock(), UTC)
        with self.store.engine.begin() as conn:
            for window in windows:
                conn.execute(rate_counter_t.update().where(
                    rate_counter_t.c.key == key, rate_counter_t.c.window == window,
                    rate_counter_t.c.started_at == window_start(now, window),
                    rate_counter_t.c.count >= count).values(count=rate_counter_t.c.count - count))

    def used(self, key: str, window: str, now: datetime | None = None) -> int:
        now = now or datetime.fromtimestamp(self.clock(), UTC)
        with self.store.engine.connect() as conn:
            value = conn.execute(sa.select(rate_counter_t.c.count).where(
                rate_counter_t.c.key == key, rate_counter_t.c.window == window,
                rate_counter_t.c.started_at == window_start(now, window))).scalar()
        return int(value or 0)
