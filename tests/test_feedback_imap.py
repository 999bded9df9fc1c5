"""IMAP intake against a small IMAP4rev1 server on loopback (the commands imaplib sends us)."""

from __future__ import annotations

import re
import socketserver
import threading
from collections.abc import Iterator

import pytest

from dispatcher.feedback.intake import ingest, open_source
from dispatcher.store import Store
from tests.test_feedback_intake import bounces
from tests.test_feedback_policy import status_of


class _Mailboxes:
    def __init__(self, inbox: list[bytes], move: bool) -> None:
        self.folders: dict[str, dict[int, bytes]] = {"INBOX": dict(enumerate(inbox, 1)),
                                                     "Processed": {}}
        self.flags: dict[int, set[str]] = {uid: set() for uid in self.folders["INBOX"]}
        self.move = move
        self.lock = threading.Lock()


class _IMAP(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        boxes: _Mailboxes = self.server.boxes  # type: ignore[attr-defined]
        inbox = boxes.folders["INBOX"]
        caps = "IMAP4rev1 MOVE" if boxes.move else "IMAP4rev1"
        self.reply("* OK test IMAP ready")
        for raw in self.rfile:
            tag, _, rest = raw.decode().strip().partition(" ")
            words = rest.split(" ")
            cmd = words[0].upper()
            if cmd == "UID":
                cmd, words = "UID " + words[1].upper(), words[1:]
            with boxes.lock:
                if cmd == "CAPABILITY":
                    self.reply(f"* CAPABILITY {caps}")
                elif cmd == "SELECT":
                    self.reply(f"* {len(inbox)} EXISTS")
                    self.reply(f"{tag} OK [READ-WRITE] SELECT done")
                    continue
                elif cmd == "CREATE":
                    self.reply(f"{tag} NO [ALREADYEXISTS] exists")
                    continue
                elif cmd == "UID SEARCH":
                    found = [u for u in inbox if not boxes.flags[u] & {"\\Deleted", "$Dispatcher"}]
                    self.reply("* SEARCH " + " ".join(map(str, found)))
                elif cmd == "UID FETCH":
                    uid = int(words[1])
                    body = inbox[uid]
                    self.wfile.write(f"* {uid} FETCH (UID {uid} BODY[] {{{len(body)}}}\r\n"
                                     .encode() + body + b")\r\n")
                elif cmd == "UID MOVE":
                    boxes.folders["Processed"][int(words[1])] = inbox.pop(int(words[1]))
                elif cmd == "UID COPY":
                    boxes.folders["Processed"][int(words[1])] = inbox[int(words[1])]
                elif cmd == "UID STORE":
                    boxes.flags[int(words[1])].update(re.findall(r"[\\$]?\w+", rest.split(
                        "FLAGS", 1)[1]))
                elif cmd == "EXPUNGE":
                    for uid in [u for u in inbox if "\\Deleted" in boxes.flags[u]]:
                        inbox.pop(uid)
                elif cmd == "LOGOUT":
                    self.reply("* BYE")
                    self.reply(f"{tag} OK LOGOUT done")
                    return
                elif cmd not in ("LOGIN", "NOOP"):
                    self.reply(f"{tag} BAD unknown")
                    continue
                self.reply(f"{tag} OK {cmd} done")


@pytest.fixture(params=[True, False], ids=["move", "copy-expunge"])
def imap(request: pytest.FixtureRequest) -> Iterator[socketserver.TCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _IMAP)
    server.move = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_imap_messages_move_to_processed_only_after_applying(
        store: Store, imap: socketserver.TCPServer) -> None:
    ids, raws = bounces(store)
    boxes = _Mailboxes([r.replace(b"\n", b"\r\n") for r in raws], imap.move)  # type: ignore[attr-defined]
    imap.boxes = boxes  # type: ignore[attr-defined]
    port = imap.server_address[1]
    name, messages = open_source(f"imap://bounce:pw@127.0.0.1:{port}/INBOX?starttls=0")
    report = ingest(store, messages, source=name, verp_prefix="bounces")
    assert (name, report.messages, report.kinds, report.errors) == (
        "imap", 3, {"hard": 2, "autoreply": 1}, [])
    assert boxes.folders["INBOX"] == {}
    assert sorted(boxes.folders["Processed"]) == [1, 2, 3]
    assert status_of(store, ids["u1@example.net"])[0] == "bounced"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_imap_flagging_instead_of_moving(store: Store, imap: socketserver.TCPServer) -> None:
    _ids, raws = bounces(store)
    boxes = _Mailboxes([r.replace(b"\n", b"\r\n") for r in raws], imap.move)  # type: ignore[attr-defined]
    imap.boxes = boxes  # type: ignore[attr-defined]
    url = f"imap://bounce:pw@127.0.0.1:{imap.server_address[1]}/INBOX?starttls=0&processed="
    report = ingest(store, open_source(url)[1], source="imap", verp_prefix="bounces")
    assert report.messages == 3
    assert len(boxes.folders["INBOX"]) == 3
    assert all({"\\Seen", "$Dispatcher"} <= f for f in boxes.flags.values())
    # The next pass finds nothing new: flagged messages are not fetched again.
    assert ingest(store, open_source(url)[1], source="imap", verp_prefix="bounces").messages == 0
