"""A recording SMTP relay on loopback for tests: real sockets, real aiosmtpd.

Configure it per test with ``@pytest.mark.relay(...)``; the keyword options
are those of :class:`RecordingHandler`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from dispatcher.smtp.capture import LoopbackController


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    at: float

    def message(self) -> EmailMessage:
        msg = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class RecordingHandler:
    """Accepts everything, except the recipients named in ``reject_rcpt`` (address -> reply)."""

    reject_rcpt: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.reject_rcpt.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.received.append(
                Received(
                    str(envelope.mail_from), list(envelope.rcpt_tos),
                    envelope.original_content or b"", time.time(),
                )
            )
        return "250 2.0.0 queued"


class RecordingRelay:
    def __init__(self, **options: Any) -> None:
        self.handler = RecordingHandler(**options)
        self.controller = LoopbackController(self.handler, enable_SMTPUTF8=True)

    @property
    def url(self) -> str:
        return str(self.controller.url)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def recipients(self) -> list[str]:
        return [r for msg in self.received for r in msg.rcpt_tos]

    def start(self) -> RecordingRelay:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
