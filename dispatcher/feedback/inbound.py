"""The inbound SMTP receiver for the bounce domain: DSNs, complaints, mailto unsubscribes.

It accepts mail only for addresses at the bounce domain — our VERP return
paths (``bounces+TOKEN@``), the unsubscribe address and the FBL/abuse
addresses given — and refuses everything else at RCPT (550 5.1.1), so it can
never become an open relay. Each message is applied (:mod:`.policy`) before
the 250 is given; if applying fails the sender gets a 451 and retries, so a
returned message is never lost.

A mailto unsubscribe (``List-Unsubscribe: <mailto:unsubscribe@...?subject=
unsubscribe TOKEN>``) is honoured when its token verifies.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

from dispatcher.core import tokens
from dispatcher.core.bounces import analyze
from dispatcher.errors import ConfigError
from dispatcher.feedback.intake import digest
from dispatcher.feedback.policy import Policy, apply, unsubscribe
from dispatcher.smtp.capture import LoopbackController
from dispatcher.store.database import Store

_TOKEN = re.compile(r"\b([0-9a-z]{1,13}-[0-9a-z]{1,13}-[a-z2-7]{16})\b", re.I)


@dataclass
class InboundHandler:
    store: Store
    domain: str
    verp_prefix: str = "bounces"
    unsubscribe_address: str = ""
    extra_addresses: tuple[str, ...] = ()
    policy: Policy = field(default_factory=Policy)
    accepted: int = 0

    def _ours(self, address: str) -> bool:
        address = address.lower()
        local, _, domain = address.rpartition("@")
        if address in (self.unsubscribe_address.lower(), *(a.lower() for a in
                                                           self.extra_addresses)):
            return True
        return domain == self.domain.lower() and (
            local == self.verp_prefix.lower() or local.startswith(self.verp_prefix.lower() + "+")
            or local in ("postmaster", "abuse", "fbl", "unsubscribe"))

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        if not self._ours(address):
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            await asyncio.to_thread(self.process, raw, [str(r) for r in envelope.rcpt_tos])
        except RecursionError:
            # MIME parts nested thousands deep never parse: a retry would fail the same way.
            return "554 5.6.0 Message structure nested too deeply"
        except Exception:  # the sender must retry rather than lose the message
            return "451 4.3.0 Could not record the message, try again later"
        self.accepted += 1
        return "250 2.0.0 Thank you"

    def process(self, raw: bytes, rcpt_tos: list[str]) -> None:
        unsub = self.unsubscribe_address.lower() or f"unsubscribe@{self.domain.lower()}"
        if any(r.lower() == unsub or r.lower().startswith("unsubscribe+") for r in rcpt_tos):
            self._mailto_unsubscribe(raw, rcpt_tos)
            return
        analysis = analyze(raw, secret=self.store.secret(), verp_prefix=self.verp_prefix)
        apply(self.store, analysis, source="smtp-in", key=digest(raw), policy=self.policy)

    def _mailto_unsubscribe(self, raw: bytes, rcpt_tos: list[str]) -> None:
        head = raw[:20000].decode("utf-8", "replace")
        secret = self.store.secret()
        for candidate in [*rcpt_tos, head]:
            for match in _TOKEN.finditer(candidate):
                ids = tokens.verify(secret, "unsub", match.group(1), 2)
                if ids is not None:
                    unsubscribe(self.store, ids[1], campaign_id=ids[0], source="mailto",
                                key=f"unsub:{match.group(1).lower()}")
                    return


def start_receiver(handler: InboundHandler, *, host: str = "127.0.0.1",
                   port: int = 0) -> LoopbackController:
    """Start the receiver in a thread; ``.port`` is the real port, ``.stop()`` ends it."""
    controller = LoopbackController(handler, hostname=host, port=port,
                                    data_size_limit=10 * 1024 * 1024)
    try:
        controller.start()
    except (OSError, OverflowError) as exc:
        controller.stop(no_assert=True)  # joins the thread that could not bind
        controller.loop.close()  # aiosmtpd leaves it open (and its sockets) on that path
        # asyncio words a busy port at length; the system's short text says it all.
        reason = (os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno
                  and exc.errno > 0 else getattr(exc, "strerror", None) or str(exc))
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from None
    return controller
