"""Sending benchmark: ``dispatcher send`` vs Postfix smtp-source vs a plain smtplib loop.

    python bench/send.py -n 100000            # the issue's run (takes a few minutes)
    python bench/send.py -n 10000 --smtplib 2000
    python bench/send.py --crash 10000        # kill -9 three times, check nothing is lost

One fresh ``smtp-sink`` per sender (it slows down after ~500k messages) on
127.0.0.1. Ours is the real command in a subprocess: the example newsletter
personalised per recipient, tracked in a SQLite store; its peak RSS is the
child's ``ru_maxrss``. smtp-source pushes the same number of 20 KB messages
over 32 sessions (the speed of light here); the smtplib loop builds an
``EmailMessage`` per recipient and sends it over one connection, as a user
would by hand. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
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


def ours(n: int, connections: int, render_processes: int) -> tuple[float, float, int]:
    root, url = workspace(n)
    with Sink() as sink:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        process = dispatcher_send(root, f"smtp://127.0.0.1:{sink.port}?starttls=off",
                                  "--connections", str(connections),
                                  "--render-processes", str(render_processes), "--batch", "500")
        _, err = process.communicate()
        took = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if process.returncode != 0:
        sys.exit(f"dispatcher send failed:\n{err.decode()[-2000:]}")
    store = Store.open(url)
    d = Delivery.__table__  # type: ignore[attr-defined]
    with store.engine.connect() as conn:
        sent = conn.execute(sa.select(sa.func.count()).where(d.c.state == "sent")).scalar_one()
    store.close()
    shutil.rmtree(root)
    assert sent == n, f"only {sent} of {n} sent"
    return n / took, max(rss, before) / 1024, int(sent)


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
    parser.add_argument("--render-processes", type=int, default=1)
    parser.add_argument("--crash", type=int, default=0, help="run the kill -9 check instead")
    args = parser.parse_args()
    if args.crash:
        crash(args.crash)
        return
    rate, rss, _ = ours(args.n, args.connections, args.render_processes)
    light = smtp_source(args.n)
    plain = smtplib_loop(min(args.smtplib, args.n))
    print(f"dispatcher send   {args.n:>8} msgs  {rate:8.0f} msgs/s  peak RSS {rss:.0f} MB")
    print(f"smtp-source -s 32 {args.n:>8} msgs  {light:8.0f} msgs/s")
    print(f"smtplib loop      {min(args.smtplib, args.n):>8} msgs  {plain:8.0f} msgs/s")
    print(f"ours / smtp-source = {rate / light:.2f}   ours / smtplib loop = {rate / plain:.1f}")


if __name__ == "__main__":
    main()
