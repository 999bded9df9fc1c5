"""Crash safety: ``kill -9`` a real ``dispatcher send`` process mid-campaign, restart, repeat.

After the last restart every recipient is ``sent`` in the store, every one
arrived at the relay at least once, the store agrees with what the relay
received, and duplicates stay within the in-flight window (a claimed batch
plus one message per connection) per kill. The 10,000-recipient version is
``bench/send.py --crash``; this one keeps the suite fast.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from dispatcher.store import Store
from dispatcher.store.models import Delivery, MailingList, Membership, Subscriber
from tests.support.badrelay import BadRelay

REPO = Path(__file__).resolve().parent.parent
N = 2000
BATCH, CONNECTIONS = 50, 4


def _workspace(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("campaigns", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "dispatcher.toml", root / "dispatcher.toml")
    url = f"sqlite:///{root / 'dispatcher.db'}"
    store = Store.open(url)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        lists = MailingList.__table__  # type: ignore[attr-defined]
        subscribers = Subscriber.__table__  # type: ignore[attr-defined]
        list_id = conn.execute(sa.insert(lists).values(name="weekly", description="",
                                                       created_at=now)
                               .returning(lists.c.id)).scalar_one()
        ids = conn.execute(sa.insert(subscribers).returning(subscribers.c.id), [
            {"email": f"r{i}@x.test", "name": "", "status": "active", "created_at": now,
             "updated_at": now, "attributes": {"first_name": f"R{i}", "city": "Berlin",
                                               "plan": "free", "signup_date": "2024-01-01"}}
            for i in range(N)]).scalars().all()
        conn.execute(sa.insert(Membership.__table__), [  # type: ignore[attr-defined]
            {"list_id": list_id, "subscriber_id": sid, "status": "subscribed",
             "created_at": now} for sid in ids])
    store.close()
    return root, url


def _start(root: Path, relay: BadRelay) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from dispatcher.cli import main; main()"]
    with (root / "output.txt").open("ab") as output:
        return subprocess.Popen(
            [*command, "send", "campaigns/weekly.yaml",
             "--relay", f"{relay.url}?starttls=off", "--connections", str(CONNECTIONS),
             "--batch", str(BATCH), "--lease", "600"],
            cwd=root, env={**os.environ, "PYTHONPATH": str(REPO), "DISPATCHER_DATABASE_URL": "",
                           "COLUMNS": "200"},
            stdout=output, stderr=subprocess.STDOUT)


def test_kill_9_repeatedly_then_finish_with_nobody_skipped(tmp_path: Path) -> None:
    root, url = _workspace(tmp_path)
    kills = 0
    with BadRelay() as relay:
        for threshold in (300, 900, 1500):
            process = _start(root, relay)
            deadline = time.monotonic() + 60
            while len(relay.received) < threshold and process.poll() is None:
                assert time.monotonic() < deadline, "sender made no progress"
                time.sleep(0.02)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.wait()
        # The lease is 10 minutes: the restarted sender takes the dead one's claims back at
        # once because their owner (this host, a dead pid) is gone, not by waiting.
        final = _start(root, relay)
        assert final.wait(timeout=120) == 0, (root / "output.txt").read_text()
        arrived = relay.recipients()
    assert kills >= 2
    store = Store.open(url)
    try:
        d = Delivery.__table__  # type: ignore[attr-defined]
        s = Subscriber.__table__  # type: ignore[attr-defined]
        with store.engine.connect() as conn:
            states = Counter(conn.execute(sa.select(d.c.state)).scalars())
            sent = set(conn.execute(sa.select(s.c.email).join(d, d.c.subscriber_id == s.c.id)
                                    .where(d.c.state == "sent")).scalars())
    finally:
        store.close()
    assert states == Counter(sent=N)
    assert set(arrived) == sent == {f"r{i}@x.test" for i in range(N)}
    duplicates = sum(count - 1 for count in arrived.values())
    assert duplicates <= kills * (BATCH + CONNECTIONS)
    # A killed sender's render process (2,000 due: it starts one) goes with it.
    deadline = time.monotonic() + 10
    while _left_in(root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _left_in(root) == []


def _left_in(root: Path) -> list[int]:
    """Processes still working in ``root``."""
    left = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == root:
                    left.append(int(proc.name))
            except OSError:
                continue
    return left
