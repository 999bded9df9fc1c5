"""The pipelining SMTP client against real loopback servers (aiosmtpd and a raw asyncio one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from dispatcher.errors import SMTPAuthError, SMTPConnectError, SMTPTimeoutError
from dispatcher.smtp.client import SMTPClient, Timeouts, prepare_data
from tests.support.badrelay import BadRelay, down_port

MSG = b"From: a@news.test\r\nTo: b@x.test\r\nSubject: hi\r\n\r\nHello\r\n"


T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


def client(relay: BadRelay, **kw: object) -> SMTPClient:
    kw.setdefault("starttls", "off")
    return SMTPClient("127.0.0.1", relay.port, helo="news.test", **kw)  # type: ignore[arg-type]


def test_prepare_data_normalises_line_endings_and_dot_stuffs() -> None:
    assert prepare_data(b".a\nb\r\n.c\rd") == b"..a\r\nb\r\n..c\r\nd\r\n.\r\n"
    assert prepare_data(b"x\r\n") == b"x\r\n.\r\n"
    # Already CRLF (the renderer's output): only the dots change.
    assert prepare_data(b".a\r\nb\r\n.\r\n") == b"..a\r\nb\r\n..\r\n.\r\n"
    assert prepare_data(b"a\r\nb\n") == b"a\r\nb\r\n.\r\n"
    # The renderer's output (CRLF by construction): a lone LF or CR is still caught.
    assert prepare_data(b"a\nb\r\n", crlf=True) == b"a\r\nb\r\n.\r\n"
    assert prepare_data(b".a\r\nb", crlf=True) == b"..a\r\nb\r\n.\r\n"


def test_several_messages_per_connection_with_per_recipient_replies() -> None:
    body = b"Subject: dots\n\n.leading dot\n..two\nlast line without newline"
    with BadRelay(rcpt={"no@x.test": ["550 5.1.1 no such user"]}) as relay:
        async def go() -> list[dict[str, int]]:
            results = []
            async with client(relay) as c:
                assert c.supports("PIPELINING") and c.supports("SIZE")
                for i in range(3):
                    r = await c.send("b@news.test", [f"u{i}@x.test", "no@x.test"], body)
                    results.append({k: v.code for k, v in r.replies.items()})
                assert c.messages_sent == 3
            return results
        results = run(go())
        assert results == [{f"u{i}@x.test": 250, "no@x.test": 550} for i in range(3)]
        assert [a.rcpt_tos for a in relay.received] == [[f"u{i}@x.test"] for i in range(3)]
        assert relay.received[0].data == (
            b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nlast line without newline\r\n")
        assert relay.handler.sessions == 1


Exchange = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _scripted_server(exchange: Exchange) -> tuple[asyncio.Server, Callable[[], int]]:
    """A raw ESMTP server offering PIPELINING that runs ``exchange`` between EHLO and QUIT."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 raw ESMTP\r\n")
        await reader.readline()
        writer.write(b"250-raw\r\n250 PIPELINING\r\n")
        await exchange(reader, writer)
        await reader.readline()
        writer.write(b"221 bye\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, lambda: int(server.sockets[0].getsockname()[1])


async def _to_end_of_data(reader: asyncio.StreamReader) -> None:
    while await reader.readline() != b".\r\n":
        pass


async def _pipelining_only_server(
    seen: list[bytes],
) -> tuple[asyncio.Server, Callable[[], int]]:
    """Answers nothing of an envelope until MAIL, RCPT and DATA all arrived: only a pipelining
    client gets through (a stepwise one waits for the MAIL reply and times out)."""

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.extend([await reader.readline() for _ in range(3)])
        writer.write(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await _to_end_of_data(reader)
        writer.write(b"250 done\r\n")

    return await _scripted_server(exchange)


def test_envelope_is_pipelined_in_one_write() -> None:
    async def go() -> list[bytes]:
        seen: list[bytes] = []
        server, port = await _pipelining_only_server(seen)
        async with server:
            c = SMTPClient("127.0.0.1", port(), starttls="off", timeouts=Timeouts.all(2))
            async with c:
                result = await c.send("a@news.test", ["b@x.test"], MSG)
            assert result.replies["b@x.test"].code == 250
        return seen
    assert run(go()) == [b"MAIL FROM:<a@news.test>\r\n", b"RCPT TO:<b@x.test>\r\n",
                         b"DATA\r\n"]


async def _holding_server(seen: list[bytes]) -> tuple[asyncio.Server, Callable[[], int]]:
    """Answers a message's content only once the next envelope came with it: only a client
    that holds the content for the next message's envelope gets through."""

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.extend([await reader.readline() for _ in range(3)])
        writer.write(b"250 ok\r\n250 ok\r\n354 go\r\n")
        await _to_end_of_data(reader)
        seen.extend([await reader.readline() for _ in range(3)])
        writer.write(b"250 first\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        await _to_end_of_data(reader)
        writer.write(b"250 second\r\n")

    return await _scripted_server(exchange)


def test_held_content_goes_out_with_the_next_envelope() -> None:
    async def go() -> tuple[list[str], list[bytes]]:
        seen: list[bytes] = []
        server, port = await _holding_server(seen)
        async with server:
            c = SMTPClient("127.0.0.1", port(), starttls="off", timeouts=Timeouts.all(2))
            async with c:
                first = await c.send("a@news.test", ["b@x.test"], MSG, hold=True)
                assert first.held and first.data_reply is None
                second = await c.send("a@news.test", ["c@x.test"], MSG, hold=True)
                assert second.held and not first.held
            # quit() sent the held content first.
            assert not second.held
            return [str(r.data_reply) for r in (first, second)], seen
    texts, seen = run(go())
    assert texts == ["250 first", "250 second"]
    assert seen[3:] == [b"MAIL FROM:<a@news.test>\r\n", b"RCPT TO:<c@x.test>\r\n",
                        b"DATA\r\n"]


def test_held_content_arrives_only_with_the_next_message_or_a_flush() -> None:
    with BadRelay() as relay:
        async def go() -> tuple[list[int], list[int]]:
            arrived = []
            async with client(relay) as c:
                first = await c.send("b@news.test", ["u1@x.test"], MSG, hold=True)
                arrived.append(len(relay.received))
                second = await c.send("b@news.test", ["u2@x.test"], MSG, hold=True)
                arrived.append(len(relay.received))
                await c.flush()
                arrived.append(len(relay.received))
            return arrived, [first.replies["u1@x.test"].code, second.replies["u2@x.test"].code]
        assert run(go()) == ([0, 1, 2], [250, 250])
        assert [a.rcpt_tos for a in relay.received] == [["u1@x.test"], ["u2@x.test"]]


def test_a_drop_after_held_content_leaves_it_unanswered_and_the_next_unsent() -> None:
    with BadRelay(drop_data=1) as relay:
        async def go() -> tuple[bool, str]:
            c = client(relay)
            await c.connect()
            first = await c.send("b@news.test", ["u1@x.test"], MSG, hold=True)
            with pytest.raises(SMTPConnectError):
                await c.send("b@news.test", ["u2@x.test"], MSG, hold=True)
            return first.held, str(first.error)
        held, error = run(go())
        assert not held and "closed" in error
        assert relay.received == []


def test_421_to_held_content_closes_before_the_next_message() -> None:
    with BadRelay(data=["421 4.7.0 closing, try later"]) as relay:
        async def go() -> tuple[int, bool]:
            c = client(relay)
            await c.connect()
            first = await c.send("b@news.test", ["u1@x.test"], MSG, hold=True)
            with pytest.raises(SMTPConnectError, match="closing"):
                await c.send("b@news.test", ["u2@x.test"], MSG, hold=True)
            return first.replies["u1@x.test"].code, c.connected
        assert run(go()) == (421, False)
        assert relay.received == []


def test_without_pipelining_the_client_goes_step_by_step() -> None:
    with BadRelay(pipelining=False, rcpt={"t@x.test": ["452 4.5.3 too many"]}) as relay:
        async def go() -> dict[str, int]:
            async with client(relay) as c:
                assert not c.supports("PIPELINING")
                # Nothing to carry a content over to: hold is not honoured.
                r = await c.send("b@news.test", ["ok@x.test", "t@x.test"], MSG, hold=True)
                assert not r.held
                return {k: v.code for k, v in r.replies.items()}
        assert run(go()) == {"ok@x.test": 250, "t@x.test": 452}
        assert relay.recipients() == {"ok@x.test": 1}


@pytest.mark.parametrize("pipelining", [True, False])
def test_421_on_mail_closes_the_session(pipelining: bool) -> None:
    with BadRelay(pipelining=pipelining, mail=["421 4.7.0 too many connections"]) as relay:
        async def go() -> tuple[int, bool]:
            c = client(relay)
            await c.connect()
            r = await c.send("b@news.test", ["u@x.test"], MSG)
            return r.replies["u@x.test"].code, c.connected
        assert run(go()) == (421, False)
        assert relay.received == []


def test_data_rejection_and_recovery_with_rset() -> None:
    with BadRelay(data=["554 5.7.1 spam detected", None]) as relay:
        async def go() -> list[int]:
            async with client(relay) as c:
                first = await c.send("b@news.test", ["u1@x.test"], MSG)
                second = await c.send("b@news.test", ["u2@x.test"], MSG)
            return [first.replies["u1@x.test"].code, second.replies["u2@x.test"].code]
        assert run(go()) == [554, 250]
        assert relay.recipients() == {"u2@x.test": 1}


def test_dropped_mid_data_raises_connect_error() -> None:
    with BadRelay(drop_data=1) as relay:
        async def go() -> None:
            async with client(relay) as c:
                await c.send("b@news.test", ["u@x.test"], MSG)
        with pytest.raises(SMTPConnectError, match="closed"):
            run(go())


def test_slow_final_reply_times_out() -> None:
    with BadRelay(slow_data=3) as relay:
        async def go() -> None:
            c = client(relay, timeouts=Timeouts(final_dot=0.5))
            await c.connect()
            await c.send("b@news.test", ["u@x.test"], MSG)
        started = time.monotonic()
        with pytest.raises(SMTPTimeoutError):
            run(go())
        assert time.monotonic() - started < 2.5


def test_down_relay() -> None:
    with pytest.raises(SMTPConnectError, match="cannot connect"):
        run(SMTPClient("127.0.0.1", down_port(), timeouts=Timeouts.all(2)).connect())


def test_starttls_self_signed_is_refused_when_verifying_and_used_when_not() -> None:
    with BadRelay(tls=True) as relay:
        with pytest.raises(SMTPConnectError, match="STARTTLS handshake failed"):
            run(client(relay, starttls="required").connect())

        async def go() -> tuple[bool, int]:
            async with client(relay, starttls="required", verify_tls=False) as c:
                r = await c.send("b@news.test", ["u@x.test"], MSG)
                return c.encrypted, r.replies["u@x.test"].code
        assert run(go()) == (True, 250)
    with BadRelay() as plain, pytest.raises(SMTPConnectError, match="not offered"):
        run(client(plain, starttls="required").connect())
    with BadRelay() as plain:
        async def opportunistic() -> bool:
            async with client(plain, starttls="opportunistic") as c:
                return c.encrypted
        assert run(opportunistic()) is False


@pytest.mark.parametrize("method", ["PLAIN", "LOGIN"])
def test_auth(method: str) -> None:
    with BadRelay(users={"news": "s3cret"}) as relay:
        async def login(password: str) -> None:
            c = client(relay, username="news", password=password)
            original = c._ehlo

            async def ehlo() -> None:
                await original()
                c.extensions["AUTH"] = method  # as if the server offered only this one
            c._ehlo = ehlo  # type: ignore[method-assign]
            await c.connect()
            await c.quit()
        run(login("s3cret"))
        with pytest.raises(SMTPAuthError, match="authentication failed: 535"):
            run(login("wrong"))


def test_size_and_smtputf8_are_refused_locally() -> None:
    with BadRelay(size_limit=1000, smtputf8=False) as relay:
        async def go() -> tuple[int, bool, int, int]:
            async with client(relay) as c:
                big = await c.send("b@news.test", ["u@x.test"], b"x" * 2000)
                utf = await c.send("b@news.test", ["jörg@x.test"], MSG)
                ok = await c.send("b@news.test", ["u@x.test"], MSG)
            reply = big.replies["u@x.test"]
            return (reply.code, reply.local, utf.replies["jörg@x.test"].code,
                    ok.replies["u@x.test"].code)
        assert run(go()) == (552, True, 553, 250)
        assert relay.recipients() == {"u@x.test": 1}
