"""Where returned mail comes from: IMAP, POP3, maildir, mbox, a folder of files — one ``ingest``.

A message is acknowledged at its source (moved to the processed folder,
flagged, deleted from POP3) only *after* its verdict is committed to the store,
and the store remembers every message by a digest of its bytes: a crash
between the two re-reads the message next time and applies nothing twice.
Nothing is ever lost: an unreadable message stays where it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import mailbox
import poplib
import re
import shutil
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import sqlalchemy as sa

from dispatcher.core.bounces import analyze
from dispatcher.errors import ConfigError, FeedbackError
from dispatcher.feedback.policy import Decision, Policy, apply
from dispatcher.store.database import Store


@dataclass
class Returned:
    """One message from a source and how to acknowledge it there."""

    raw: bytes
    label: str
    done: Callable[[], None] = lambda: None
    # Why this entry was not read (unreadable file) or is no message at all (a CSV in
    # the folder): either way it is left where it is.
    unread: str | None = None
    not_a_message: bool = False


@dataclass
class IngestReport:
    messages: int = 0
    duplicates: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files in the folder that are no mail
    failed: int = 0  # messages not read or not applied, left for the next pass


def digest(raw: bytes) -> str:
    return "msg:" + hashlib.sha256(raw).hexdigest()


def ingest(store: Store, messages: Iterator[Returned], *, source: str, verp_prefix: str,
           policy: Policy | None = None) -> IngestReport:
    """Analyse and apply every message; acknowledge each only once it is applied."""
    report = IngestReport()
    secret = store.secret()
    for message in messages:
        if message.not_a_message:
            report.skipped.append(message.label)
            continue
        if message.unread is not None:
            report.failed += 1
            report.errors.append(f"{message.label}: not read, left in place: {message.unread}")
            continue
        report.messages += 1
        try:
            analysis = analyze(message.raw, secret=secret, verp_prefix=verp_prefix)
            decisions = apply(store, analysis, source=source, key=digest(message.raw),
                              policy=policy)
        except (ValueError, LookupError, TypeError, RecursionError,
                sa.exc.SQLAlchemyError) as exc:
            # Left at its source, unacknowledged: the next pass tries it again. (A
            # RecursionError is a hostile message, MIME parts nested thousands deep:
            # it must not stop the messages after it.)
            report.failed += 1
            report.errors.append(f"{message.label}: not applied, left in place: {exc}")
            continue
        if decisions and decisions[0].action == "duplicate":
            report.duplicates += 1
        else:
            report.kinds[analysis.kind] = report.kinds.get(analysis.kind, 0) + 1
            report.decisions.extend(decisions)
        try:
            message.done()
        except (OSError, imaplib.IMAP4.error, poplib.error_proto) as exc:
            report.errors.append(f"{message.label}: applied, but could not be acknowledged: {exc}")
    return report


def from_maildir(path: Path, processed: str = "Processed") -> Iterator[Returned]:
    """Messages in a maildir's new/ and cur/; each is moved to the ``.Processed`` folder."""
    box = mailbox.Maildir(path, factory=None, create=False)
    done_box = box.add_folder(processed) if processed not in box.list_folders() else \
        box.get_folder(processed)
    for key in list(box.iterkeys()):
        try:
            raw = box.get_bytes(key)
        except (KeyError, OSError):
            continue  # delivered to another reader meanwhile

        def move(key: str = key, raw: bytes = raw) -> None:
            done_box.add(raw)
            box.discard(key)

        yield Returned(raw, f"{path}:{key}", move)


def from_mbox(path: Path) -> Iterator[Returned]:
    """Messages of an mbox file, read only (the store's digests make re-reading harmless)."""
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        for key in box.iterkeys():
            yield Returned(box.get_bytes(key), f"{path}:{key}")
    finally:
        box.close()


_HEADER_START = re.compile(rb"\s*(From |[!-9;-~]+:)")  # a header field, or an mbox From line


def looks_like_message(path: Path, raw: bytes) -> bool:
    """A ``.eml`` file, or one that starts like a message (``Return-Path:``, ``Received:``)."""
    return path.suffix.lower() == ".eml" or bool(_HEADER_START.match(raw[:1000]))


def from_files(paths: list[Path], processed: Path | None = None, *,
               only_messages: bool = False) -> Iterator[Returned]:
    """Single-message files (.eml); moved to ``processed`` when given.

    With ``only_messages`` (a folder the user pointed at), a file that is not mail,
    such as the subscriber CSV beside the bounces, is skipped and never moved.
    """
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            yield Returned(b"", str(path), unread=f"cannot read: {exc.strerror}")
            continue
        if only_messages and not looks_like_message(path, raw):
            yield Returned(b"", str(path), not_a_message=True)
            continue

        def move(path: Path = path) -> None:
            if processed is not None:
                processed.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), processed / path.name)

        yield Returned(raw, str(path), move)


def _tls_context(query: dict[str, list[str]]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if query.get("verify", ["1"])[0] in ("0", "false", "no"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def from_imap(url: str) -> Iterator[Returned]:
    """``imaps://user:pass@host[:993]/FOLDER?processed=Processed`` (``imap://`` needs STARTTLS
    unless ``?starttls=0``). Processed messages are moved to ``processed`` (created if
    missing), or, with ``processed=`` empty, flagged ``\\Seen`` and ``$Dispatcher``.
    Messages are fetched with ``BODY.PEEK[]``, so a crash leaves them unread."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    host = parts.hostname or "localhost"
    context = _tls_context(query)
    if parts.scheme == "imaps":
        client: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, parts.port or 993, ssl_context=context,
                                                  timeout=60)
    else:
        client = imaplib.IMAP4(host, parts.port or 143, timeout=60)
        if query.get("starttls", ["1"])[0] not in ("0", "false", "no"):
            client.starttls(ssl_context=context)
    client.login(unquote(parts.username or ""), unquote(parts.password or ""))
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    processed = query.get("processed", ["Processed"])[0]
    try:
        typ, _ = client.select(f'"{folder}"')
        if typ != "OK":
            raise FeedbackError(f"IMAP folder {folder!r} cannot be opened")
        if processed:
            client.create(f'"{processed}"')  # fails harmlessly when it exists
        _, data = client.uid("SEARCH", "UNDELETED", "UNKEYWORD", "$Dispatcher")
        uids = [u.decode() for u in (data[0] or b"").split()]
        can_move = "MOVE" in client.capabilities
        for uid in uids:
            typ, fetched = client.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if typ != "OK" or not isinstance(raw, bytes):
                continue

            def ack(uid: str = uid) -> None:
                if not processed:
                    client.uid("STORE", uid, "+FLAGS", r"(\Seen $Dispatcher)")
                elif can_move:
                    client.uid("MOVE", uid, f'"{processed}"')
                else:
                    typ, _ = client.uid("COPY", uid, f'"{processed}"')
                    if typ == "OK":
                        client.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
                        client.expunge()

            yield Returned(raw, f"imap:{folder}:{uid}", ack)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()


def from_pop3(url: str) -> Iterator[Returned]:
    """``pop3s://user:pass@host[:995]`` (``pop3://`` uses STLS unless ``?starttls=0``).
    Each message is deleted only after it was applied; QUIT commits the deletions."""
    parts = urlsplit(url)
    query = parse_qs(parts.query, keep_blank_values=True)
    host = parts.hostname or "localhost"
    context = _tls_context(query)
    if parts.scheme == "pop3s":
        client: poplib.POP3 = poplib.POP3_SSL(host, parts.port or 995, context=context,
                                              timeout=60)
    else:
        client = poplib.POP3(host, parts.port or 110, timeout=60)
        if query.get("starttls", ["1"])[0] not in ("0", "false", "no"):
            client.stls(context=context)
    client.user(unquote(parts.username or ""))
    client.pass_(unquote(parts.password or ""))
    try:
        count, _size = client.stat()
        for number in range(1, count + 1):
            _resp, lines, _octets = client.retr(number)
            raw = b"\r\n".join(lines) + b"\r\n"

            def delete(number: int = number) -> None:
                client.dele(number)

            yield Returned(raw, f"pop3:{number}", delete)
    finally:
        client.quit()


def open_source(spec: str) -> tuple[str, Iterator[Returned]]:
    """``(source name, messages)`` for a URL, ``maildir:``/``mbox:`` path or plain path."""
    if re.match(r"^(imap|pop3)s?://", spec):
        _check_url(spec)
    if re.match(r"^imaps?://", spec):
        return "imap", from_imap(spec)
    if re.match(r"^pop3s?://", spec):
        return "pop3", from_pop3(spec)
    if spec.startswith("maildir:"):
        return "maildir", from_maildir(Path(spec.removeprefix("maildir:")))
    if spec.startswith("mbox:"):
        return "mbox", from_mbox(Path(spec.removeprefix("mbox:")))
    path = Path(spec)
    if path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir():
        return "maildir", from_maildir(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        return "files", from_files(files, processed=path / "processed", only_messages=True)
    if path.is_file():
        with path.open("rb") as handle:
            first = handle.readline()
        if first.startswith(b"From "):
            return "mbox", from_mbox(path)
        return "files", from_files([path])
    raise ConfigError(f"no such mailbox, file or URL: {spec}")


def _check_url(spec: str) -> None:
    """A mailbox URL's host and port, checked before connecting (the readers are lazy)."""
    shown = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", spec)
    try:
        parts = urlsplit(spec)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"mailbox URL {shown!r}: {exc}") from None
