"""An asyncio SMTP client that pipelines (RFC 2920), on its own protocol (``connection.py``).

Why not aiosmtplib (the guide says prefer libraries): measured here (see
/work/shared/FIELD-NOTES.md, "Library facts"), aiosmtplib 5.x and smtplib do
not pipeline, so every message costs 4-5 round trips (MAIL, RCPT, DATA, body,
RSET) where a pipelining client needs about 2 (MAIL+RCPT+DATA in one write,
then the body), and aiosmtplib makes ~6 regex passes over each message
(~50 us each at 20 KB). Behind a 5 ms round trip a pipelined client sent ~2x
what aiosmtplib did per connection, and on loopback aiosmtplib saturated a core
at ~1,480 msgs/s with prebuilt 20 KB messages. Here line endings and
dot-stuffing are checked with ``bytes.count`` and rewritten only when needed
(C speed), and a message's envelope goes out in one write when the server
offers PIPELINING. With ``send(..., hold=True)`` a message's content waits
and goes out with the next message's envelope, which RFC 2920 §3.1 allows
("the actual transfer of message content is explicitly allowed to be the
first command in a group"): one write and one round trip per message.

One :class:`SMTPClient` is one session: EHLO (HELO fallback), STARTTLS
(required or opportunistic), AUTH PLAIN/LOGIN, then any number of
:meth:`SMTPClient.send` calls, with RSET between messages (RFC 5321 §4.1.1.5).
Each phase has its own timeout (RFC 5321 §4.5.3.2 gives minutes; a bulk
client sets them shorter). A reply to a command is data, not an exception:
``send`` returns one :class:`Reply` per recipient. Exceptions
(:mod:`dispatcher.errors` ``SMTP*``) mean the session itself is gone; a held
message's result then carries the error (its content may have arrived).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatcher.errors import SMTPConnectError, SMTPError
from dispatcher.smtp.connection import CLOSING, Reply
from dispatcher.smtp.session import SMTPSession, Timeouts

__all__ = ["SMTPClient", "SendResult", "Timeouts", "prepare_data"]


@dataclass
class SendResult:
    """The server's verdict for each recipient of one message, in the order given."""

    replies: dict[str, Reply] = field(default_factory=dict)
    data_reply: Reply | None = None
    # The content waits to go out with the next message (send(hold=True)); this result is
    # completed, in place, by the call that sends it.
    held: bool = False
    # The session failed after the held content was written, before its final reply.
    error: SMTPError | None = None

    @property
    def accepted(self) -> list[str]:
        return [r for r, reply in self.replies.items() if 200 <= reply.code < 300]


def prepare_data(data: bytes, *, crlf: bool = False) -> bytes:
    """The DATA payload: CRLF line endings, dot-stuffed (RFC 5321 §4.5.2), ending ``CRLF.CRLF``.

    Bytes that are CRLF already (the usual case) are proven so by ``count``
    calls (no copy) and rewritten only for a bare CR or LF. ``crlf``: the
    caller's bytes are CRLF by construction (the renderer's output, tested
    so); then equal counts of CR and LF (single-byte scans) stand in for
    counting CRLF pairs (a two-byte search, three times slower), which still
    catches a lone CR or a lone LF.
    """
    lines = data.count(b"\n")
    if data.count(b"\r") != lines or (not crlf and data.count(b"\r\n") != lines):
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    if data.startswith(b"."):
        data = b"." + data
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _needs_smtputf8(*addresses: str) -> bool:
    return not all(a.isascii() for a in addresses)


class SMTPClient(SMTPSession):
    """Mail transactions on a session; ``async with SMTPClient(...) as client: ...``."""

    # A content kept back by send(hold=True), and the result its final reply completes.
    _held: tuple[bytes, SendResult] | None = None

    async def send(self, mail_from: str, recipients: Sequence[str], data: bytes, *,
                   prepared: bool = False, hold: bool = False) -> SendResult:
        """Send one message; ``prepared``: ``data`` already went through :func:`prepare_data`.

        ``hold``: when the server pipelines, keep the content back once DATA is
        accepted (``result.held``) to go out with the next message's envelope,
        or at :meth:`flush` or :meth:`quit`. Whatever this call raises, the
        content of a message it was asked to hold has not been written.
        """
        if not self.connected:
            self._fail_held(SMTPConnectError(f"{self.where}: not connected"))
            raise SMTPConnectError(f"{self.where}: not connected")
        if self._dirty and self._held is None:
            await self.rset()
        payload = data if prepared else prepare_data(data)
        result = SendResult()
        local = self._refuse_locally(mail_from, recipients, payload)
        if local is not None:
            result.replies = dict.fromkeys(recipients, local)
            return result
        params = []
        if self.supports("SIZE"):
            params.append(f"SIZE={len(payload)}")
        if self.supports("8BITMIME") and not payload.isascii():
            params.append("BODY=8BITMIME")
        if self.supports("SMTPUTF8") and _needs_smtputf8(mail_from, *recipients):
            params.append("SMTPUTF8")
        mail = " ".join([f"MAIL FROM:<{mail_from}>", *params])
        if self.supports("PIPELINING"):
            self._dirty = True
            data_reply = await self._envelope_pipelined(mail, recipients, result)
        else:
            await self.flush()
            self._dirty = True
            data_reply = await self._envelope_stepwise(mail, recipients, result)
        if data_reply is None:
            return result
        if data_reply.code != 354:
            for rcpt in result.accepted:
                result.replies[rcpt] = data_reply
            result.data_reply = data_reply
            return result
        if not result.accepted:
            # RFC 2920 §3.1: DATA accepted although no RCPT was; end it empty.
            await self._write(b".\r\n", self.timeouts.data_block)
            await self._replies(1, self.timeouts.final_dot)
            return result
        if hold and self.supports("PIPELINING"):
            result.held = True
            self._held = (payload, result)
            return result
        await self._write(payload, self.timeouts.data_block)
        (final,) = await self._replies(1, self.timeouts.final_dot)
        if self._complete(result, final):
            self._dirty = False
        return result

    async def flush(self) -> None:
        """Write a held content alone and wait for its final reply (completing its result)."""
        if self._held is None:
            return
        payload, result = self._held
        self._held = None
        try:
            await self._write(payload, self.timeouts.data_block)
            (final,) = await self._replies(1, self.timeouts.final_dot)
        except SMTPError as exc:
            result.held, result.error = False, exc
            raise
        if self._complete(result, final):
            self._dirty = False

    def _complete(self, result: SendResult, final: Reply) -> bool:
        """Fill in the final reply; True when the transaction went through."""
        result.held = False
        result.data_reply = final
        for rcpt in result.accepted:
            result.replies[rcpt] = final
        if final.code == CLOSING and self._conn is not None:
            self._conn.abort()  # RFC 5321 §3.8: the server is closing the channel
        if 200 <= final.code < 300:
            self.messages_sent += 1
            return True
        return False

    def _fail_held(self, error: SMTPError) -> None:
        if self._held is not None:
            self._held[1].held, self._held[1].error = False, error
            self._held = None

    def _refuse_locally(self, mail_from: str, recipients: Sequence[str],
                        payload: bytes) -> Reply | None:
        size = self.extensions.get("SIZE", "")
        if size.isdigit() and int(size) and len(payload) > int(size):
            return Reply(552, f"5.3.4 message of {len(payload)} bytes exceeds the relay's "
                              f"limit of {size}", local=True)
        if _needs_smtputf8(mail_from, *recipients) and not self.supports("SMTPUTF8"):
            return Reply(553, "5.6.7 non-ASCII address and the relay does not offer SMTPUTF8",
                         local=True)
        return None

    async def _envelope_pipelined(self, mail: str, recipients: Sequence[str],
                                  result: SendResult) -> Reply | None:
        lines = [mail, *(f"RCPT TO:<{r}>" for r in recipients), "DATA"]
        envelope = "".join(f"{line}\r\n" for line in lines).encode("utf-8")
        held, self._held = self._held, None
        if held is None:
            await self._write(envelope, self.timeouts.command)
            got = await self._replies(len(lines), self.timeouts.command)
        else:
            # The held content opens this group: its final reply comes first.
            payload, previous = held
            try:
                await self._write(payload + envelope, self.timeouts.data_block)
                got = await self._replies(len(lines) + 1, max(self.timeouts.final_dot,
                                                              self.timeouts.command))
            except SMTPError as exc:
                previous.held, previous.error = False, exc
                raise
            # This transaction is open now, whatever the previous one's fate: no RSET.
            final, got = got[0], got[1:]
            self._complete(previous, final)
            if final.code == CLOSING:
                raise SMTPConnectError(f"{self.where}: closing: {final}", code=final.code,
                                       text=final.text)
        closing = next((i for i, r in enumerate(got) if r.code == CLOSING), len(got))
        if closing <= len(recipients):
            # 421 to MAIL or a RCPT (the replies after it may never come).
            await self._give_up(got[closing], recipients, result, got[1:closing])
            return None
        mail_reply, *rcpt_replies, data_reply = got
        if mail_reply.code != 250:
            result.replies = dict.fromkeys(recipients, mail_reply)
            if data_reply.code == 354:
                await self._write(b".\r\n", self.timeouts.data_block)
                await self._replies(1, self.timeouts.final_dot)
            return None
        result.replies = dict(zip(recipients, rcpt_replies, strict=True))
        if data_reply.code == CLOSING:
            await self.close()
        return data_reply

    async def _give_up(self, reply: Reply, recipients: Sequence[str], result: SendResult,
                       answered: Sequence[Reply] = ()) -> None:
        """A 421 mid-envelope: the server is closing (RFC 5321 §3.8); nobody was sent."""
        await self.close()
        result.replies = dict.fromkeys(recipients, reply)
        for rcpt, earlier in zip(recipients, answered, strict=False):
            if not 200 <= earlier.code < 300:
                result.replies[rcpt] = earlier

    async def _envelope_stepwise(self, mail: str, recipients: Sequence[str],
                                 result: SendResult) -> Reply | None:
        mail_reply = await self.command(mail)
        if mail_reply.code != 250:
            result.replies = dict.fromkeys(recipients, mail_reply)
            return None
        for rcpt in recipients:
            reply = await self.command(f"RCPT TO:<{rcpt}>")
            result.replies[rcpt] = reply
            if reply.code == CLOSING:
                for rest in recipients[len(result.replies):]:
                    result.replies[rest] = reply
                return None
        if not result.accepted:
            return None
        return await self.command("DATA")

    async def quit(self) -> None:
        if self.connected:
            with contextlib.suppress(SMTPError):
                await self.flush()
        await super().quit()

    async def close(self) -> None:
        self._fail_held(SMTPConnectError(f"{self.where}: closed before the content was sent"))
        await super().close()
