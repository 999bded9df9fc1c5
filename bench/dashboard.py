"""Does the dashboard stay responsive on a big store? One refresh's cost at 1M deliveries.

    python bench/dashboard.py                      # 1,000,000 deliveries, SQLite and PostgreSQL
    python bench/dashboard.py --deliveries 200000 --db sqlite

Fills a store with one running campaign of N deliveries (90% sent, 5% deferred, 3% bounced,
2% queued) and one event per outcome spread over the last ten minutes, as a daemon would
have left them, then times what the dashboard does once a second: ``StoreSource.overview()``
(advance the rollups, read campaigns, throughput, relays, domains and the event feed) and
``detail()`` for the campaign. Also timed: the first rollup of everything (a daemon that was
down while a send ran), and a refresh right after one more second of sending at 2,000
messages/s. The refresh reads only the rollup tables, so its cost should not grow with N.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dispatcher.dashboard.source import StoreSource
from dispatcher.store import Store, stats
from dispatcher.store.database import create_engine
from dispatcher.store.models import Campaign, Delivery, Event, Subscriber

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RELAY = "smtp://127.0.0.1:2525"
CHUNK = 20_000
EXTRA = 2_000  # deliveries sent in the one more second measured at the end
STATES = [("sent", 250, None), ("deferred", 451, "4.7.0"), ("bounced", 550, "5.1.1"),
          ("queued", None, None)]


def _state(i: int) -> tuple[str, int | None, str | None]:
    roll = i % 100
    return STATES[0] if roll < 90 else STATES[1] if roll < 95 else \
        STATES[2] if roll < 98 else STATES[3]


def _chunks(n: int, make: Callable[[int], dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, n, CHUNK):
        yield [make(i) for i in range(start, min(n, start + CHUNK))]


def fill(store: Store, n: int, now: datetime) -> int:
    subscriber = Subscriber.__table__  # type: ignore[attr-defined]
    delivery = Delivery.__table__  # type: ignore[attr-defined]
    campaign = Campaign.__table__  # type: ignore[attr-defined]
    start = now - timedelta(minutes=10)
    with store.engine.begin() as conn:
        cid = conn.execute(campaign.insert().values(
            name="big", status="running", relay=RELAY, started_at=start, created_at=start,
            updated_at=now, definition={}).returning(campaign.c.id)).scalar_one()
        for rows in _chunks(n + EXTRA, lambda i: {
                "id": i + 1, "email": f"user{i}@example{i % 500}.com", "name": "",
                "attributes": {}, "status": "active", "created_at": start, "updated_at": start}):
            conn.execute(subscriber.insert(), rows)

        def delivery_row(i: int) -> dict[str, Any]:
            state, code, status = _state(i) if i < n else STATES[3]
            return {"id": i + 1, "campaign_id": cid, "subscriber_id": i + 1,
                    "domain": f"example{i % 500}.com", "variant": "", "state": state,
                    "attempts": 0 if state == "queued" else 1, "last_code": code,
                    "last_status": status, "relay": RELAY, "updated_at": now}

        for rows in _chunks(n + EXTRA, delivery_row):
            conn.execute(delivery.insert(), rows)
    _events(store, cid, range(n), start, now)
    return int(cid)


def _events(store: Store, cid: int, ids: range, start: datetime, end: datetime) -> None:
    event = Event.__table__  # type: ignore[attr-defined]
    span = (end - start) / max(1, len(ids))

    def row(k: int) -> dict[str, Any] | None:
        i = ids[k]
        state, code, status = _state(i)
        if state == "queued":
            return None
        return {"at": start + span * k, "kind": state, "campaign_id": cid,
                "subscriber_id": i + 1, "delivery_id": i + 1, "code": code, "status": status,
                "reason": "user_unknown" if state == "bounced" else None, "source": "smtp",
                "detail": f"{code} {status or ''}", "data": {}}

    with store.engine.begin() as conn:
        for rows in _chunks(len(ids), lambda k: row(k) or {}):
            conn.execute(event.insert(), [r for r in rows if r])


def timed(call: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def run(url: str, label: str, n: int) -> None:
    store = Store.open(url)
    now = datetime.now(UTC)
    began = time.perf_counter()
    cid = fill(store, n, now)
    print(f"{label:10} filled {n:,} deliveries in {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    rounds = 0
    # A round takes a bounded batch; the daemon runs one per housekeeping tick.
    while True:
        step = stats.rollup(store, now)
        if not (step.deliveries or step.events):
            break
        rounds += 1
    first = time.perf_counter() - began
    source = StoreSource(store)
    overview = timed(source.overview, 20)
    detail = timed(lambda: source.detail(cid), 20)
    # One more second of sending, then the refresh that has to roll it up.
    _events(store, cid, range(n, n + EXTRA), now, now + timedelta(seconds=1))
    after = timed(source.overview, 1)[0]
    print(f"{label:10} first rollup of {n:,} events {first:.1f} s in {rounds} rounds; "
          f"refresh (overview) median {statistics.median(overview):.0f} ms, "
          f"max {max(overview):.0f} ms; detail median {statistics.median(detail):.0f} ms; "
          f"refresh after {EXTRA:,} new events {after:.0f} ms")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    if args.db in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            run(f"sqlite:///{Path(folder) / 'bench.db'}", "sqlite", args.deliveries)
    if args.db in ("postgresql", "both"):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            run(f"{PG_URL}?options=-csearch_path%3D{schema}", "postgresql", args.deliveries)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
