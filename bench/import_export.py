"""Import and export speed and memory at list scale, against plain sqlite3.executemany.

    python bench/import_export.py                 # 1,000,000 rows, SQLite and PostgreSQL
    python bench/import_export.py --rows 100000 --db sqlite

Generates a CSV (email, first_name, last_name and 5 attribute columns, 1%
invalid rows, 2% duplicates) in a temporary directory, then runs each step in
its own process so its peak RSS is its own (CPU time is printed next to wall
time: on a shared machine it is the steadier figure, but for PostgreSQL it
leaves out the server's work, so read wall time there): the floor (``sqlite3.executemany``
of the same rows into the same table shape), ``dispatcher import``'s code
path, and the export. Prints rows/s, peak RSS and the ratios.
PostgreSQL is expected at 127.0.0.1:5432 (database ``test``), as in the tests.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FIRST = ["Anna", "Ben", "Chloé", "Dmitri", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
LAST = ["Müller", "Smith", "Kowalski", "Tanaka", "Dubois", "Novak", "Rossi", "García"]
CITIES = ["Berlin", "Lisbon", "Tokyo", "Paris", "Vienna", "Oslo", "Lima", "Seoul"]


def generate(path: Path, rows: int) -> None:
    rng = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first_name", "last_name", "city", "plan", "age", "score",
                         "signup_date"])
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01:
                email = f"broken{i}.example.com"
            elif roll < 0.03 and i > 0:
                email = f"user{rng.randrange(i)}@example.com"
            else:
                email = f"user{i}@example.com"
            writer.writerow([email, rng.choice(FIRST), rng.choice(LAST), rng.choice(CITIES),
                             rng.choice(("free", "pro", "team")), rng.randrange(18, 90),
                             f"{rng.random() * 100:.2f}",
                             f"20{rng.randrange(10, 26)}-0{rng.randrange(1, 10)}-1"
                             f"{rng.randrange(10)}"])


def step_floor(path: Path, db: Path) -> dict[str, float]:
    """The same rows loaded with plain sqlite3.executemany: no validation, no mapping."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cpu = time.process_time()
    conn.execute("CREATE TABLE subscriber (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT, "
                 "attributes JSON, status TEXT, created_at DATETIME, updated_at DATETIME)")
    start = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        batch: list[tuple[str, str, str]] = []
        now = "2026-01-01 00:00:00.000000"
        for row in reader:
            batch.append((row[0], json.dumps(dict(zip(("city", "plan"), row[3:5], strict=True))),
                          now))
            if len(batch) == 5000:
                conn.executemany("INSERT OR IGNORE INTO subscriber (email, attributes, status, "
                                 "created_at, updated_at) VALUES (?, ?, 'active', ?, ?)",
                                 [(e, a, t, t) for e, a, t in batch])
                conn.commit()
                batch.clear()
        conn.executemany("INSERT OR IGNORE INTO subscriber (email, attributes, status, "
                         "created_at, updated_at) VALUES (?, ?, 'active', ?, ?)",
                         [(e, a, t, t) for e, a, t in batch])
        conn.commit()
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def step_import(path: Path, url: str) -> dict[str, float]:
    from dispatcher.lists.importer import ImportOptions, import_file
    from dispatcher.store import Store

    store = Store.open(url)
    start, cpu = time.perf_counter(), time.process_time()
    report = import_file(store, path, ImportOptions(list_name="bench"))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    return {"seconds": seconds, "cpu": cpu, "added": report.added,
            "rejected": report.rejected_total, "duplicates": report.duplicates}


def step_export(url: str, out: Path) -> dict[str, float]:
    from dispatcher.lists.exporter import export_csv
    from dispatcher.store import Store

    store = Store.open(url)
    start, cpu = time.perf_counter(), time.process_time()
    with out.open("w", newline="", encoding="utf-8") as f:
        count = export_csv(store, f)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    store.close()
    # The export's worker processes: their CPU time counts, their memory is their own.
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"seconds": seconds, "cpu": cpu + workers.ru_utime + workers.ru_stime, "rows": count,
            "worker_rss_mb": workers.ru_maxrss / 1024}


def child(args: list[str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--step", *args], capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--step", nargs="+")
    args = parser.parse_args()
    if args.step:
        kind, *rest = args.step
        if kind == "floor":
            result = step_floor(Path(rest[0]), Path(rest[1]))
        elif kind == "import":
            result = step_import(Path(rest[0]), rest[1])
        else:
            result = step_export(rest[0], Path(rest[1]))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "subscribers.csv"
        generate(source, args.rows)
        print(f"{args.rows:,} rows, {source.stat().st_size / 1e6:.0f} MB CSV; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {_load()}")
        floor = child(["floor", str(source), str(root / "floor.db")])
        floor_rate = args.rows / floor["seconds"]
        floor_cpu = args.rows / floor["cpu"]
        print(f"{'':10} {'step':16} {'wall rows/s':>12} {'CPU rows/s':>11} {'peak RSS':>9}")
        print(f"{'floor':10} {'executemany':16} {floor_rate:>12,.0f} {floor_cpu:>11,.0f} "
              f"{floor['peak_rss_mb']:6.0f} MB")
        targets = []
        if args.db in ("sqlite", "both"):
            targets.append(("sqlite", f"sqlite:///{root / 'store.db'}", None))
        if args.db in ("postgresql", "both"):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            targets.append(("postgresql", f"{PG_URL}?options=-csearch_path%3D{schema}", schema))
        for name, url, schema in targets:
            if schema:
                _pg(f'CREATE SCHEMA "{schema}"')
            try:
                imp = child(["import", str(source), url])
                rate, cpu_rate = args.rows / imp["seconds"], args.rows / imp["cpu"]
                print(f"{name:10} {'import':16} {rate:>12,.0f} {cpu_rate:>11,.0f} "
                      f"{imp['peak_rss_mb']:6.0f} MB  wall {rate / floor_rate:.2f}x, CPU "
                      f"{cpu_rate / floor_cpu:.2f}x the floor; added {imp['added']:,.0f}, "
                      f"rejected {imp['rejected']:,.0f}, duplicates {imp['duplicates']:,.0f}")
                exp = child(["export", url, str(root / f"export-{name}.csv")])
                print(f"{name:10} {'export':16} {exp['rows'] / exp['seconds']:>12,.0f} "
                      f"{exp['rows'] / exp['cpu']:>11,.0f} {exp['peak_rss_mb']:6.0f} MB  "
                      f"({exp['rows']:,.0f} rows; each worker process "
                      f"{exp['worker_rss_mb']:.0f} MB at most)", flush=True)
            finally:
                if schema:
                    _pg(f'DROP SCHEMA "{schema}" CASCADE')
        print(f"done {time.strftime('%H:%M UTC', time.gmtime())}, {_load()}")


def _load() -> str:
    """The load average: on a shared machine, whether the rates above can be trusted."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def _pg(sql: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


if __name__ == "__main__":
    main()
