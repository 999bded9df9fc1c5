"""One SMTP connection's bytes: commands out, whole replies in, one timer per wait.

Why an :class:`asyncio.Protocol` and not asyncio streams: with a
``StreamReader.readline`` and an ``asyncio.timeout`` per reply line, reading
took ~40 us of the ~56 us of Python a message cost the client in the send
benchmark (four replies per message, each a coroutine hop and a timer).
Here ``data_received`` parses every complete reply in what arrived, and the
replies to a pipelined group (RFC 2920) are awaited together, under one
timer.

A reply that comes while nobody waits (a server's unsolicited 421) queues up
and answers the next wait, as it would have on a stream.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import cast

from dispatcher.errors import SMTPConnectError, SMTPError, SMTPReplyError, SMTPTimeoutError

_LINE_LIMIT = 8192
CLOSING = 421  # RFC 5321 §3.8: the server is closing the channel


@dataclass(frozen=True)
class Reply:
    code: int
    text: str
    # True when we made the reply up without asking the server (e.g. message over SIZE).
    local: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class Connection(asyncio.Protocol):
    """The transport of one session and the replies it has brought so far."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.transport: asyncio.Transport | None = None
        self._pending = b""  # an incomplete line
        self._lines: list[str] = []  # the lines of an incomplete multi-line reply
        self._replies: deque[Reply] = deque()
        self._error: SMTPError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self._lost = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, host: str, port: int, *, tls: ssl.SSLContext | None,
                   server_hostname: str | None) -> Connection:
        connection = cls(f"{host}:{port}")
        await asyncio.get_running_loop().create_connection(
            lambda: connection, host, port, ssl=tls, server_hostname=server_hostname)
        return connection

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (another event loop's, e.g. uvloop's, is not a subclass).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._pending + data if self._pending else data
        start = 0
        try:
            while (end := buffer.find(b"\n", start)) != -1:
                self._parse(buffer[start:end + 1])
                start = end + 1
            if len(buffer) - start > _LINE_LIMIT:
                raise SMTPReplyError(f"{self.where}: reply line too long")
        except SMTPReplyError as exc:
            # The conversation is out of step: nothing after this can be trusted.
            self._fail(exc)
            if self.transport is not None:
                self.transport.abort()
            return
        self._pending = buffer[start:]
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(SMTPConnectError(f"{self.where}: connection closed by the server"
                                    + (f" ({exc})" if exc else "")))
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- replies -------------------------------------------------------------------------
    def _parse(self, raw: bytes) -> None:
        if len(raw) > _LINE_LIMIT:
            raise SMTPReplyError(f"{self.where}: reply line too long")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        code = line[:3]
        if len(line) < 3 or not code.isdigit():
            raise SMTPReplyError(f"{self.where}: malformed reply {line[:80]!r}")
        self._lines.append(line[4:])
        if line[3:4] != "-":
            self._replies.append(Reply(int(code), "\n".join(self._lines)))
            self._lines = []

    def _fail(self, error: SMTPError) -> None:
        if self._error is None:
            self._error = error
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        replies = self._replies
        if (len(replies) >= self._wanted or self._error is not None
                or (replies and replies[-1].code == CLOSING)):
            waiter.set_result(None)

    async def replies(self, count: int, timeout: float) -> list[Reply]:
        """The next ``count`` replies, waited for together.

        Fewer only when the server said 421 (it is closing: the last one is
        the 421); raises when the connection ends without one or nothing came
        within ``timeout`` seconds (then the connection is closed).
        """
        queued = self._replies
        if len(queued) < count and self._error is None and not (
                queued and queued[-1].code == CLOSING):
            self._wanted = count
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                expired = await _wait(self._waiter, timeout)
            finally:
                self._waiter = None
            if expired:
                self.abort()
                raise SMTPTimeoutError(f"{self.where}: no reply within {timeout:g} s")
        got = [queued.popleft() for _ in range(min(count, len(queued)))]
        if len(got) < count and not (got and got[-1].code == CLOSING):
            raise self._error or SMTPConnectError(f"{self.where}: connection closed")
        return got

    # -- writing and closing -------------------------------------------------------------
    async def write(self, data: bytes, timeout: float) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self._error is not None:
            raise SMTPConnectError(f"{self.where}: not connected")
        transport.write(data)
        if not self._paused:
            return
        # Flow control: the kernel's buffer and the transport's are full; wait for room.
        self._drained = asyncio.get_running_loop().create_future()
        if await _wait(self._drained, timeout):
            self.abort()
            raise SMTPTimeoutError(f"{self.where}: could not write within {timeout:g} s")
        if self._error is not None:
            raise self._error

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Upgrade in place (STARTTLS, RFC 3207); the caller puts a timeout around it."""
        transport = self.transport
        if transport is None:
            raise SMTPConnectError(f"{self.where}: not connected")
        upgraded = await asyncio.get_running_loop().start_tls(
            transport, self, context, server_hostname=server_hostname)
        if upgraded is None:
            raise SMTPConnectError(f"{self.where}: connection closed during the TLS handshake")
        self.transport = upgraded

    def abort(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is None:
            return
        transport.close()
        try:
            async with asyncio.timeout(2):
                await asyncio.shield(self._lost)
        except (TimeoutError, OSError, ssl.SSLError):
            transport.abort()


async def _wait(future: asyncio.Future[None], timeout: float) -> bool:
    """Wait for ``future``; True when ``timeout`` seconds ran out first."""
    expired = False

    def expire() -> None:
        nonlocal expired
        if not future.done():
            expired = True
            future.set_result(None)

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await future
    finally:
        timer.cancel()
    return expired
