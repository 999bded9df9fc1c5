"""The ``capture`` relay: a real SMTP server on loopback that files every message as ``.eml``.

It lets the example workspace run on a fresh machine with nothing else
installed, and shows a newcomer exactly what would have left: one file per
accepted recipient, with the envelope sender written as ``Return-Path`` the
way a mail delivery agent would.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from dispatcher.errors import ConfigError

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]")


class LoopbackController(Controller):
    """aiosmtpd's threaded controller, able to listen on port 0 (a free port the OS picks)."""

    def __init__(self, handler: Any, *, hostname: str = "127.0.0.1", port: int = 0, **kw: Any):
        kw.setdefault("data_size_limit", 50 * 1024 * 1024)
        super().__init__(handler, hostname=hostname, port=port, **kw)

    def _trigger_server(self) -> None:
        # The base class connects to self.port to check readiness: learn the real port first.
        server = self.server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]

    @property
    def url(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"smtp://{host}:{self.port}"


class CaptureHandler:
    """Writes each accepted message once per recipient into ``outbox``."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        # Found before anything is queued: a message the relay cannot file must not be
        # answered at all, let alone with a 5xx that would record a bounce.
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            probe = self.outbox / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"the capture relay cannot write its messages here: "
                              f"{exc.strerror or exc}", path=str(outbox)) from exc
        start = len(list(self.outbox.glob("*.eml")))
        self._counter = itertools.count(start + 1)
        self._lock = threading.Lock()
        self.accepted = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        for rcpt in envelope.rcpt_tos:
            with self._lock:
                number = next(self._counter)
                self.accepted += 1
            name = f"{number:06d}-{_UNSAFE.sub('_', rcpt)[:100]}.eml"
            head = f"Return-Path: <{envelope.mail_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
            try:
                (self.outbox / name).write_bytes(head + content)
            except OSError as exc:
                # Temporary on purpose: the message is retried once the disk has room.
                return f"451 4.3.0 cannot file the message: {exc.strerror or exc}"
        return "250 2.0.0 captured"


class CaptureRelay:
    """``with CaptureRelay(outbox) as relay: send(relay.url)``."""

    def __init__(self, outbox: Path) -> None:
        self.handler = CaptureHandler(outbox)
        self.controller = LoopbackController(self.handler, enable_SMTPUTF8=True)

    @property
    def url(self) -> str:
        return str(self.controller.url)

    def __enter__(self) -> CaptureRelay:
        self.controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.controller.stop()
