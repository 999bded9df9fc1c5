"""An SMTP session: connect, greeting, EHLO (HELO fallback), STARTTLS, AUTH, commands, QUIT.

A session is a connected, greeted and (if asked) authenticated conversation
on one :class:`~dispatcher.smtp.connection.Connection`; mail transactions on
top of it are :class:`dispatcher.smtp.client.SMTPClient`'s. STARTTLS is
required or opportunistic (RFC 3207), AUTH is PLAIN or LOGIN. Each phase has
its own timeout (RFC 5321 §4.5.3.2 gives minutes; a bulk client sets them
shorter).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass
from typing import Self

from dispatcher.errors import (
    SMTPAuthError,
    SMTPConnectError,
    SMTPError,
    SMTPReplyError,
    SMTPTimeoutError,
)
from dispatcher.smtp.connection import CLOSING, Connection, Reply
from dispatcher.smtp.tls import client_context


@dataclass(frozen=True)
class Timeouts:
    """Seconds per phase (RFC 5321 §4.5.3.2 names them; the defaults are bulk-client short)."""

    connect: float = 30.0
    greeting: float = 60.0
    command: float = 60.0  # EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, RSET, QUIT
    data_block: float = 60.0  # writing the body
    final_dot: float = 120.0  # the reply to "."

    @classmethod
    def all(cls, seconds: float) -> Timeouts:
        return cls(seconds, seconds, seconds, seconds, seconds)



class SMTPSession:
    """One SMTP session to ``host:port``; ``async with SMTPSession(...) as session: ...``."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        helo: str = "localhost",
        implicit_tls: bool = False,
        starttls: str = "opportunistic",  # required | opportunistic | off
        verify_tls: bool = True,
        tls_context: ssl.SSLContext | None = None,
        username: str | None = None,
        password: str | None = None,
        timeouts: Timeouts | None = None,
        server_hostname: str | None = None,
    ) -> None:
        if starttls not in ("required", "opportunistic", "off"):
            raise ValueError(f"starttls must be required, opportunistic or off, not {starttls!r}")
        self.host = host
        self.port = port
        self.helo = helo
        self.implicit_tls = implicit_tls
        self.starttls = starttls
        self.verify_tls = verify_tls
        self._tls_context = tls_context
        self.username = username
        self.password = password
        self.timeouts = timeouts or Timeouts()
        self.server_hostname = server_hostname or host
        self.extensions: dict[str, str] = {}
        self.encrypted = False
        self.messages_sent = 0
        self._conn: Connection | None = None
        self._dirty = False  # a transaction was started: RSET before the next one

    @property
    def tls_context(self) -> ssl.SSLContext:
        # Built on first use: loading the system's trusted roots costs ~70 ms, wasted on a
        # relay spoken to in plain text (a local MTA, the benchmark's sink).
        if self._tls_context is None:
            self._tls_context = client_context(self.verify_tls)
        return self._tls_context

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.is_open

    def supports(self, extension: str) -> bool:
        return extension.upper() in self.extensions

    # -- low level -----------------------------------------------------------------------
    async def _replies(self, count: int, timeout: float) -> list[Reply]:
        if self._conn is None:
            raise SMTPConnectError(f"{self.where}: not connected")
        return await self._conn.replies(count, timeout)

    async def _write(self, data: bytes, timeout: float) -> None:
        if self._conn is None:
            raise SMTPConnectError(f"{self.where}: not connected")
        await self._conn.write(data, timeout)

    async def command(self, line: str, *, timeout: float | None = None) -> Reply:
        await self._write(line.encode("utf-8") + b"\r\n", self.timeouts.command)
        (reply,) = await self._replies(1, timeout or self.timeouts.command)
        if reply.code == CLOSING:
            await self.close()
        return reply

    # -- session -------------------------------------------------------------------------
    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self.timeouts.connect):
                self._conn = await Connection.open(
                    self.host, self.port, tls=self.tls_context if self.implicit_tls else None,
                    server_hostname=self.server_hostname if self.implicit_tls else None)
        except TimeoutError as exc:
            raise SMTPTimeoutError(f"{self.where}: connect timed out") from exc
        except ssl.SSLError as exc:
            raise SMTPConnectError(f"{self.where}: TLS handshake failed: {exc}") from exc
        except OSError as exc:
            raise SMTPConnectError(f"{self.where}: cannot connect: {exc}") from exc
        self.encrypted = self.implicit_tls
        (greeting,) = await self._replies(1, self.timeouts.greeting)
        if greeting.code != 220:
            await self.close()
            raise SMTPConnectError(f"{self.where}: refused us: {greeting}",
                                   code=greeting.code, text=greeting.text)
        await self._ehlo()
        if not self.encrypted and self.starttls != "off":
            if self.supports("STARTTLS"):
                await self._starttls()
            elif self.starttls == "required":
                await self.quit()
                raise SMTPConnectError(f"{self.where}: STARTTLS is required but not offered")
        if self.username is not None:
            await self._auth()

    async def _ehlo(self) -> None:
        reply = await self.command(f"EHLO {self.helo}")
        if reply.code == 250:
            self.extensions = {}
            for line in reply.text.split("\n")[1:]:
                keyword, _, params = line.strip().partition(" ")
                self.extensions[keyword.upper()] = params
            return
        if reply.code == CLOSING:
            raise SMTPConnectError(f"{self.where}: {reply}", code=reply.code, text=reply.text)
        helo = await self.command(f"HELO {self.helo}")
        if helo.code != 250:
            await self.close()
            raise SMTPReplyError(f"{self.where}: HELO refused: {helo}", code=helo.code,
                                 text=helo.text)
        self.extensions = {}

    async def _starttls(self) -> None:
        reply = await self.command("STARTTLS")
        if reply.code != 220:
            if self.starttls == "required" or reply.code == CLOSING:
                await self.close()
                raise SMTPConnectError(f"{self.where}: STARTTLS refused: {reply}",
                                       code=reply.code, text=reply.text)
            return
        conn = self._conn
        assert conn is not None
        try:
            async with asyncio.timeout(self.timeouts.command):
                await conn.start_tls(self.tls_context, self.server_hostname)
        except (TimeoutError, ssl.SSLError, OSError) as exc:
            await self.close()
            raise SMTPConnectError(f"{self.where}: STARTTLS handshake failed: {exc}") from exc
        self.encrypted = True
        # RFC 3207 §4.2: forget what the server said before TLS and ask again.
        await self._ehlo()

    async def _auth(self) -> None:
        user, password = self.username or "", self.password or ""
        methods = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in methods or not methods:
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            reply = await self.command(f"AUTH PLAIN {token}")
        elif "LOGIN" in methods:
            reply = await self.command("AUTH LOGIN")
            for value in (user, password):
                if reply.code != 334:
                    break
                reply = await self.command(base64.b64encode(value.encode()).decode())
        else:
            await self.quit()
            raise SMTPAuthError(f"{self.where}: no AUTH method we speak ({' '.join(methods)})")
        if reply.code != 235:
            await self.quit()
            raise SMTPAuthError(f"{self.where}: authentication failed: {reply}",
                                code=reply.code, text=reply.text)

    async def rset(self) -> None:
        reply = await self.command("RSET")
        if reply.code != 250:
            await self.close()
            raise SMTPReplyError(f"{self.where}: RSET refused: {reply}", code=reply.code,
                                 text=reply.text)
        self._dirty = False

    async def quit(self) -> None:
        if self.connected:
            with contextlib.suppress(SMTPError):
                await self.command("QUIT", timeout=min(self.timeouts.command, 5.0))
        await self.close()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.quit()

