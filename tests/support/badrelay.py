"""Relays that misbehave on purpose: real aiosmtpd servers on 127.0.0.1, port 0.

What a :class:`BadRelay` does wrong is scripted, so a test can assert exact
final states whatever order the engine's connections run in:

* ``rcpt={"a@x.test": ["451 4.3.0 later", "250 OK"]}``: replies to RCPT for one
  address, one per attempt (the last one repeats); anything else is accepted;
* ``mail=[...]``, ``data=[...]``: replies to MAIL FROM and to the final dot,
  consumed in order across the whole server (``None`` = behave);
* ``drop_data=N``: the first N messages lose their connection after the dot,
  before any reply (the sender cannot know whether they were delivered);
* ``slow_data=S``: wait S seconds before answering the dot (past a timeout);
* ``tls=True``: STARTTLS with a self-signed certificate made with
  ``cryptography`` (a verifying client must refuse it); ``require_tls``;
* ``users={"user": "secret"}``: AUTH required, PLAIN and LOGIN;
* :func:`down_port`: a port nobody listens on.

Every accepted message is kept (:attr:`BadRelay.received`) with the time it
arrived, so rate and duplicate checks use what the server actually saw.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dispatcher.smtp.capture import LoopbackController


def self_signed_context(hostname: str = "localhost") -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``hostname`` and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
    return context


def down_port() -> int:
    """A loopback port that refuses connections (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Arrival:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float
    session: int


@dataclass
class BadHandler:
    rcpt: dict[str, list[str]] = field(default_factory=dict)
    mail: list[str | None] = field(default_factory=list)
    data: list[str | None] = field(default_factory=list)
    drop_data: int = 0
    slow_data: float = 0.0
    received: list[Arrival] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    pipelining: bool = True
    ehlo: str | None = None
    auth_required: bool = False

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        with self.lock:
            self.sessions += 1
        if self.ehlo:
            return [self.ehlo]
        session.host_name = hostname
        # aiosmtpd reads commands from a stream, so it copes with pipelined ones (RFC 2920)
        # but does not say so; advertising it makes clients use it.
        extra = ["250-PIPELINING"] if self.pipelining else []
        return [*responses[:-1], *extra, responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        with self.lock:
            scripted = self.mail.pop(0) if self.mail else None
        if scripted:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        key = address.lower()
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
        replies = self.rcpt.get(key)
        if replies:
            reply = replies[min(attempt, len(replies) - 1)]
            if not reply.startswith("2"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            drop = self.drop_data > 0
            if drop:
                self.drop_data -= 1
            scripted = None if drop or not self.data else self.data.pop(0)
        if self.slow_data:
            await asyncio.sleep(self.slow_data)
        if drop:
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "421 4.4.2 dropped (unreachable: the connection is gone)"
        if scripted:
            return scripted
        with self.lock:
            self.received.append(Arrival(str(envelope.mail_from), list(envelope.rcpt_tos),
                                         envelope.original_content or b"", time.monotonic(),
                                         id(session)))
        return "250 2.0.0 queued"


def _authenticator(users: dict[str, str]) -> Any:
    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and users.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False)
    return check


class BadRelay:
    """``with BadRelay(rcpt={...}) as relay: ... relay.url``."""

    def __init__(self, *, tls: bool = False, require_tls: bool = False,
                 users: dict[str, str] | None = None, smtputf8: bool = True,
                 size_limit: int | None = None, **options: Any) -> None:
        self.handler = BadHandler(**options)
        kw: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if size_limit is not None:
            kw["data_size_limit"] = size_limit
        if tls or require_tls:
            kw["tls_context"] = self_signed_context()
            kw["require_starttls"] = require_tls
        if users is not None:
            # aiosmtpd warns when auth_required comes without TLS; the handler enforces it.
            kw.update(auth_require_tls=False, authenticator=_authenticator(users))
            self.handler.auth_required = True
        self.controller = LoopbackController(self.handler, **kw)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def url(self) -> str:
        return str(self.controller.url)

    @property
    def received(self) -> list[Arrival]:
        with self.handler.lock:
            return list(self.handler.received)

    def recipients(self) -> Counter[str]:
        """How many times each address was delivered (a duplicate shows as 2)."""
        return Counter(r.lower() for a in self.received for r in a.rcpt_tos)

    def start(self) -> BadRelay:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> BadRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
