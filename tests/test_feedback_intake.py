"""Returned mail from a maildir, an mbox, a folder, POP3 and the inbound SMTP receiver."""

from __future__ import annotations

import mailbox
import smtplib
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dispatcher.core import tokens
from dispatcher.feedback.inbound import InboundHandler, start_receiver
from dispatcher.feedback.intake import ingest, open_source
from dispatcher.store import Store
from dispatcher.store.models import Event
from tests.test_feedback_policy import dsn, seed, status_of

CORPUS = Path(__file__).parent / "data" / "bounces"


def bounces(store: Store) -> tuple[dict[str, int], list[bytes]]:
    cid, ids, _ = seed(store, ["u1@example.net", "u2@example.net", "auto@example.net"])
    raws = [dsn(store, cid, ids[e], e, "5.1.1", f"550 5.1.1 <{e}>: user unknown")
            for e in ("u1@example.net", "u2@example.net")]
    raws.append(b"From: auto@example.net\nTo: news@news.example.com\nSubject: Out of office\n"
                b"Auto-Submitted: auto-replied\n\nBack on Monday.\n")
    return ids, raws


def kinds(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(sa.select(Event.kind)).scalars())


def test_maildir_messages_are_moved_only_after_applying(store: Store, tmp_path: Path) -> None:
    ids, raws = bounces(store)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in raws:
        box.add(raw)
    name, messages = open_source(str(tmp_path / "Maildir"))
    report = ingest(store, messages, source=name, verp_prefix="bounces")
    assert (name, report.messages, report.kinds) == ("maildir", 3, {"hard": 2, "autoreply": 1})
    assert len(box) == 0 and len(box.get_folder("Processed")) == 3
    assert status_of(store, ids["u1@example.net"])[0] == "bounced"
    assert kinds(store) == ["autoreply", "bounced", "bounced", "suppressed", "suppressed"]
    # A copy delivered again (or a crash before the move) is recognised and not re-applied.
    box.add(raws[0])
    again = ingest(store, open_source(f"maildir:{tmp_path / 'Maildir'}")[1], source="maildir",
                   verp_prefix="bounces")
    assert (again.messages, again.duplicates) == (1, 1)
    assert len(kinds(store)) == 5


def test_mbox_is_read_only_and_idempotent(store: Store, tmp_path: Path) -> None:
    ids, raws = bounces(store)
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for raw in raws:
        box.add(raw)
    box.close()
    before = path.read_bytes()
    for expected_dupes in (0, 3):
        name, messages = open_source(str(path))
        report = ingest(store, messages, source=name, verp_prefix="bounces")
        assert (name, report.messages, report.duplicates) == ("mbox", 3, expected_dupes)
    assert path.read_bytes() == before
    assert status_of(store, ids["u2@example.net"])[0] == "bounced"


def test_folder_of_files_and_the_corpus_never_crash(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    samples = sorted((CORPUS / "flufl").glob("*.txt"))[:40]
    for sample in samples:
        (folder / sample.name).write_bytes(sample.read_bytes())
    name, messages = open_source(str(folder))
    report = ingest(store, messages, source=name, verp_prefix="bounces")
    assert (name, report.messages, report.errors) == ("files", 40, [])
    assert sorted(p.name for p in (folder / "processed").iterdir()) == [s.name for s in samples]


class _POP3(socketserver.StreamRequestHandler):
    """Just enough RFC 1939 to serve a mailbox: USER PASS STAT RETR DELE QUIT."""

    def handle(self) -> None:
        box: dict[int, bytes] = self.server.box  # type: ignore[attr-defined]
        deleted: set[int] = set()
        self.wfile.write(b"+OK ready\r\n")
        for line in self.rfile:
            cmd, _, arg = line.decode().strip().partition(" ")
            cmd = cmd.upper()
            if cmd in ("USER", "PASS", "NOOP"):
                self.wfile.write(b"+OK\r\n")
            elif cmd == "STAT":
                self.wfile.write(f"+OK {len(box)} {sum(map(len, box.values()))}\r\n".encode())
            elif cmd == "RETR":
                body = box[int(arg)].replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
                self.wfile.write(b"+OK\r\n" + body + b"\r\n.\r\n")
            elif cmd == "DELE":
                deleted.add(int(arg))
                self.wfile.write(b"+OK\r\n")
            elif cmd == "QUIT":
                for number in deleted:
                    box.pop(number)
                self.wfile.write(b"+OK bye\r\n")
                return
            else:
                self.wfile.write(b"-ERR\r\n")


@pytest.fixture
def pop3() -> Iterator[socketserver.TCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _POP3)
    server.box = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_pop3_deletes_only_what_was_applied(store: Store,
                                            pop3: socketserver.TCPServer) -> None:
    ids, raws = bounces(store)
    pop3.box.update(enumerate(raws, start=1))  # type: ignore[attr-defined]
    port = pop3.server_address[1]
    name, messages = open_source(f"pop3://bounce:secret@127.0.0.1:{port}/?starttls=0")
    report = ingest(store, messages, source=name, verp_prefix="bounces")
    assert (name, report.messages, report.kinds) == ("pop3", 3, {"hard": 2, "autoreply": 1})
    assert pop3.box == {}  # type: ignore[attr-defined]
    assert status_of(store, ids["u1@example.net"])[0] == "bounced"


def test_inbound_smtp_receiver(store: Store) -> None:
    cid, ids, _ = seed(store, ["u1@example.net", "left@example.net"])
    handler = InboundHandler(store, "bounces.example.com", "bounces",
                             "unsubscribe@bounces.example.com")
    controller = start_receiver(handler)
    try:
        raw = dsn(store, cid, ids["u1@example.net"], "u1@example.net", "5.1.1",
                  "550 5.1.1 user unknown")
        unsub = tokens.sign(store.secret(), "unsub", cid, ids["left@example.net"])
        with smtplib.SMTP("127.0.0.1", controller.port, timeout=10) as smtp:
            ret = raw.split(b"\nTo: ", 1)[1].split(b"\n", 1)[0].decode()
            assert smtp.sendmail("", [ret], raw) == {}
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                smtp.sendmail("spammer@evil.example", ["victim@gmail.com"], b"Subject: relay?\n\n")
            smtp.sendmail("left@example.net", ["unsubscribe@bounces.example.com"],
                          f"From: left@example.net\nSubject: unsubscribe {unsub}\n\n".encode())
    finally:
        controller.stop()
    assert handler.accepted == 2
    assert status_of(store, ids["u1@example.net"])[0] == "bounced"
    assert status_of(store, ids["left@example.net"])[0] == "unsubscribed"
    with store.engine.connect() as conn:
        rows = sorted(conn.execute(sa.select(Event.kind, Event.source)).all())
    assert rows == [("bounced", "smtp-in"), ("suppressed", "smtp-in"), ("unsubscribed", "mailto")]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_message_that_cannot_be_applied_stays_in_the_mailbox(store: Store,
                                                               tmp_path: Path) -> None:
    _ids, raws = bounces(store)
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(raws[0])
    with store.engine.begin() as conn:  # the store breaks under us
        conn.execute(sa.text("DROP TABLE feedback_seen"))
    report = ingest(store, open_source(str(tmp_path / "Maildir"))[1], source="maildir",
                    verp_prefix="bounces")
    assert report.messages == 1 and len(report.errors) == 1
    assert "not applied, left in place" in report.errors[0]
    assert len(box) == 1 and len(box.get_folder("Processed")) == 0
