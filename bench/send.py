"""Sending benchmark: ``dispatcher send`` vs Postfix smtp-source vs a plain smtplib loop.

    python bench/send.py -n 100000            # the issue's run (takes a few minutes)
    python bench/send.py -n 20000 --smtplib 2000
    python bench/send.py -n 1000000 --ours-only   # memory at scale, no reference runs
    python bench/send.py --crash 10000        # kill -9 three times, check nothing is lost

One fresh ``smtp-sink`` per sender (it slows down after ~500k messages) on
127.0.0.1. Ours is the real command in a subprocess, with its own defaults
except ``--connections`` (and what is passed on with ``--render-processes``,
``--batch``): the example newsletter personalised per recipient, tracked in
a SQLite store. Its rate is end to end (start-up, queueing the audience,
sending, recording; the headline figure); the steady rate is measured from
the store, between the first and the last batch of outcomes written, and
start-up is the time until the first batch was written. Peak RSS is polled
from /proc: the sender and its render processes together, and the largest
one. smtp-source pushes the same number of 20 KB messages over 32 sessions
(the speed of light here); the smtplib loop builds an ``EmailMessage`` per
recipient and sends it over one connection, as a user would by hand. The
machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispatcher.store import Store  # noqa: E402
from dispatcher.store.models import Delivery, MailingList, Membership, Subscriber  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sink:
    """``smtp-sink`` on a free loopback port, stopped on exit."""

    def __enter__(self) -> Sink:
        if shutil.which("smtp-sink") is None:
            sys.exit("smtp-sink not found: install postfix (see /work/shared/FIELD-NOTES.md)")
        self.port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(["smtp-sink", *user, f"127.0.0.1:{self.port}", "1024"])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


def workspace(n: int) -> tuple[Path, str]:
    root = Path(tempfile.mkdtemp(prefix="bench-send-"))
    for name in ("campaigns", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "dispatcher.toml", root / "dispatcher.toml")
    url = f"sqlite:///{root / 'dispatcher.db'}"
    store = Store.open(url)
    now = datetime.now(UTC)
    lists = MailingList.__table__  # type: ignore[attr-defined]
    subscribers = Subscriber.__table__  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        list_id = conn.execute(sa.insert(lists).values(name="weekly", description="",
                                                       created_at=now)
                               .returning(lists.c.id)).scalar_one()
        for start in range(0, n, 10000):
            ids = conn.execute(sa.insert(subscribers).returning(subscribers.c.id), [
                {"email": f"reader{i}@example.net", "name": f"Reader {i}", "status": "active",
                 "created_at": now, "updated_at": now,
                 "attributes": {"first_name": f"Reader{i}", "city": "Lisbon", "plan": "free",
                                "signup_date": "2024-01-01"}}
                for i in range(start, min(n, start + 10000))]).scalars().all()
            conn.execute(sa.insert(Membership.__table__), [  # type: ignore[attr-defined]
                {"list_id": list_id, "subscriber_id": sid, "status": "subscribed",
                 "created_at": now} for sid in ids])
    store.close()
    return root, url


def dispatcher_send(root: Path, relay: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from dispatcher.cli import main; main()", "send",
         "campaigns/weekly.yaml", "--relay", relay, *extra],
        cwd=root, env={**os.environ, "PYTHONPATH": str(REPO), "DISPATCHER_DATABASE_URL": ""},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("VmRSS:")), 0)


def _tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(_tree(int(child)))
    return found


class Memory(threading.Thread):
    """Peak RSS of a process and its descendants (sum and largest), polled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.total_kb, self.largest_kb = pid, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            sizes = [_rss_kb(p) for p in _tree(self.pid)]
            self.total_kb = max(self.total_kb, sum(sizes))
            self.largest_kb = max([self.largest_kb, *sizes])


@dataclass
class Ours:
    rate: float
    steady: float
    startup: float
    total_mb: float
    largest_mb: float


def ours(n: int, connections: int, extra: list[str]) -> Ours:
    root, url = workspace(n)
    with Sink() as sink:
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        process = dispatcher_send(root, f"smtp://127.0.0.1:{sink.port}?starttls=off",
                                  "--connections", str(connections), *extra)
        memory = Memory(process.pid)
        memory.start()
        _, err = process.communicate()
        took = time.perf_counter() - started
        memory.done.set()
        memory.join()
    if process.returncode != 0:
        sys.exit(f"dispatcher send failed:\n{err.decode()[-2000:]}")
    store = Store.open(url)
    d = Delivery.__table__  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        sent = conn.execute(sa.select(sa.func.count()).where(d.c.state == "sent")).scalar_one()
        first, last = conn.execute(sa.select(sa.func.min(d.c.sent_at),
                                             sa.func.max(d.c.sent_at))).one()
        in_first = conn.execute(sa.select(sa.func.count()).where(d.c.sent_at == first)
                                ).scalar_one()
    store.close()
    shutil.rmtree(root)
    assert sent == n, f"only {sent} of {n} sent"
    span = (last - first).total_seconds()
    return Ours(n / took, (n - in_first) / span if span > 0 else float("nan"),
                (first - started_at).total_seconds(), memory.total_kb / 1024,
                memory.largest_kb / 1024)


def smtp_source(n: int) -> float:
    with Sink() as sink:
        started = time.perf_counter()
        subprocess.run(["smtp-source", "-4", "-d", "-s", "32", "-m", str(n), "-l", "20000",
                        f"127.0.0.1:{sink.port}"], check=True)
        return n / (time.perf_counter() - started)


def smtplib_loop(n: int) -> float:
    body = ("Hello {name}, here is your week.\n" + "lorem ipsum dolor sit amet " * 20 + "\n") * 25
    with Sink() as sink:
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            for i in range(n):
                msg = EmailMessage()
                msg["From"] = "news@news.example.com"
                msg["To"] = f"reader{i}@example.net"
                msg["Subject"] = f"Reader{i}, your week"
                msg.set_content(body.format(name=f"Reader{i}"))
                msg.add_alternative(f"<p>{body.format(name=f'Reader{i}')}</p>", subtype="html")
                smtp.send_message(msg)
        return n / (time.perf_counter() - started)


def crash(n: int) -> None:
    from tests.support.badrelay import BadRelay

    root, url = workspace(n)
    kills = 0
    with BadRelay() as relay:
        for fraction in (0.15, 0.45, 0.75):
            process = dispatcher_send(root, f"{relay.url}?starttls=off", "--batch", "200")
            while len(relay.received) < n * fraction and process.poll() is None:
                time.sleep(0.02)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
            process.communicate()
        final = dispatcher_send(root, f"{relay.url}?starttls=off", "--batch", "200")
        final.communicate()
        arrived = relay.recipients()
    store = Store.open(url)
    d = Delivery.__table__  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        states = Counter(conn.execute(sa.select(d.c.state)).scalars())
    store.close()
    duplicates = sum(c - 1 for c in arrived.values())
    print(f"crash: {kills} kills, states {dict(states)}, {len(arrived)} distinct recipients "
          f"arrived, {duplicates} duplicates (bound: {kills} x (200 + 4) = {kills * 204})")
    assert states == Counter(sent=n) and len(arrived) == n and duplicates <= kills * 204
    shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000, help="recipients / messages")
    parser.add_argument("--smtplib", type=int, default=2000, help="messages for the smtplib loop")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--render-processes", type=int, default=None,
                        help="passed on to dispatcher send (default: its own choice)")
    parser.add_argument("--batch", type=int, default=None,
                        help="passed on to dispatcher send (default: its own choice)")
    parser.add_argument("--ours-only", action="store_true",
                        help="only dispatcher send (for large -n: memory and steady rate)")
    parser.add_argument("--crash", type=int, default=0, help="run the kill -9 check instead")
    args = parser.parse_args()
    if args.crash:
        crash(args.crash)
        return
    extra = [*(["--render-processes", str(args.render_processes)]
               if args.render_processes is not None else []),
             *(["--batch", str(args.batch)] if args.batch is not None else [])]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    result = ours(args.n, args.connections, extra)
    print(f"dispatcher send   {args.n:>8} msgs  {result.rate:8.0f} msgs/s end to end  "
          f"(steady {result.steady:.0f} msgs/s, start-up {result.startup:.1f} s)")
    print(f"                  peak RSS {result.total_mb:.0f} MB (sender and render processes; "
          f"largest process {result.largest_mb:.0f} MB)")
    if args.ours_only:
        return
    light = smtp_source(args.n)
    plain = smtplib_loop(min(args.smtplib, args.n))
    print(f"smtp-source -s 32 {args.n:>8} msgs  {light:8.0f} msgs/s")
    print(f"smtplib loop      {min(args.smtplib, args.n):>8} msgs  {plain:8.0f} msgs/s")
    print(f"ours / smtp-source = {result.rate / light:.2f} "
          f"(steady {result.steady / light:.2f})   "
          f"ours / smtplib loop = {result.rate / plain:.1f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
