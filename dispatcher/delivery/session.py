"""One SMTP session of a run: take a job, pace it, send it, hand the reply to the recorder.

Sessions share one queue per relay (or per destination in direct mode, see
``direct.py``), reconnect after ``per_connection`` messages, and never send
while the recorder holds a full window of unwritten replies (``recorder.py``).

When the relay pipelines, a message's content is held back and goes out with
the next message's envelope (``SMTPClient.send(hold=True)``): one write and
one round trip per message instead of two. A held content goes out alone as
soon as nothing follows at once (the queue is empty, the relay paces, the
connection is to be renewed, the run stops). If the session fails before a
held content was written, that message was not sent: it goes back to the
queue, unattempted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from dispatcher.core.rates import is_throttle
from dispatcher.delivery.pool import Relay
from dispatcher.delivery.run import Job, Run
from dispatcher.errors import SMTPError
from dispatcher.smtp.client import SendResult, SMTPClient
from dispatcher.smtp.mx import MXError

Held = tuple[Job, SendResult]
_THROTTLE_REFRESH = 2.0  # seconds a destination's suspension is cached per run
_CACHED = 100_000  # domains and groups remembered per run (memory stays flat on any list)


async def session(run: Run, relay: Relay, take: Callable[[Relay], Job | None],
                  requeue: Callable[[Job, Relay], None], idle: Callable[[], bool],
                  connect: Callable[[Relay], SMTPClient]) -> None:
    client: SMTPClient | None = None
    held: Held | None = None  # a message whose content waits for the next one (RFC 2920)
    recorder = run.recorder
    try:
        while not run.halted:
            job = take(relay)
            if job is None:
                await _flush(run, relay, client, held)
                held = None
                if idle():
                    return
                await run.wait_for_work()
                continue
            until = await destination_wait(run, job)
            if until is not None:
                run.finish(run.outcome(
                    job, None, f"not tried: destination suspended until {until:%H:%M:%S} "
                    "after it asked us to slow down", attempted=False, not_before=until))
                continue
            if relay.paced:
                await _flush(run, relay, client, held)  # a content does not wait for a slot
                held = None
            if await relay.pace(run.shared) is None:
                requeue(job, relay)  # quota used up: another relay, or a later pass
                continue
            if client is None or not client.connected or (
                    client.messages_sent >= relay.per_connection):
                await _flush(run, relay, client, held)
                held = None
                if client is not None:
                    relay.open_connections -= 1
                    await client.quit()
                client = connect(relay)
                try:
                    await client.connect()
                    relay.open_connections += 1
                except MXError as exc:
                    client = None
                    run.finish(run.outcome(job, 550 if exc.permanent else None,
                                           f"{exc.status} {exc}", status=exc.status,
                                           relay=relay.name))
                    continue
                except SMTPError as exc:
                    client = None
                    relay.failed(time.monotonic(), str(exc))
                    if exc.code is not None and is_throttle(exc.code, exc.text):
                        await relay.slow_down(run.shared, exc.text)
                    requeue(job, relay)
                    continue
            if recorder.full:
                await recorder.wait_for_room()
            held = await deliver(run, relay, client, job, held, requeue)
        await _flush(run, relay, client, held)
    finally:
        if client is not None:
            relay.open_connections -= 1
            await client.quit()


async def deliver(run: Run, relay: Relay, client: SMTPClient, job: Job, held: Held | None,
                  requeue: Callable[[Job, Relay], None]) -> Held | None:
    """Send ``job`` (its content held back for the next one when the relay pipelines) and
    report what this completed: the message held before, and this one unless held."""
    message = job.message
    holds = client.supports("PIPELINING")
    try:
        result = await client.send(message.envelope_from, [message.recipient], message.data,
                                   prepared=True, hold=True)
    except SMTPError as exc:
        if held is not None:
            await _report(run, relay, *held)
        if holds:
            requeue(job, relay)  # its content never left: another session sends it
        else:
            # No reply for this message: it may or may not have arrived; retry later.
            run.finish(run.outcome(job, None, f"{relay.name}: {exc}", relay=relay.name))
        return None
    if held is not None:
        await _report(run, relay, *held)
    if result.held:
        return job, result
    await _report(run, relay, job, result)
    return None


async def _flush(run: Run, relay: Relay, client: SMTPClient | None,
                 held: Held | None) -> None:
    """Send the held content now (nothing follows it soon) and report its reply."""
    if held is None:
        return
    if client is not None:
        # A failure is on the result (result.error): reported below.
        with contextlib.suppress(SMTPError):
            await client.flush()
    await _report(run, relay, *held)


async def _report(run: Run, relay: Relay, job: Job, result: SendResult) -> None:
    message = job.message
    if result.error is not None:
        # No final reply came for its content: it may have arrived; retry later.
        run.finish(run.outcome(job, None, f"{relay.name}: {result.error}", relay=relay.name))
        return
    reply = result.replies[message.recipient]
    if 200 <= reply.code < 300:
        relay.worked()
    elif is_throttle(reply.code, reply.text):
        if run.shaper is not None and reply is not result.data_reply and reply.code != 421:
            # Refused at RCPT by a relay passing on the destination's "slow down":
            # that destination (MX group) backs off, other mail keeps flowing.
            group = _group(run, job)
            suspend = run.shaper.shape(group).suspend_seconds
            await asyncio.to_thread(run.shared.slow_down, f"dest:{group}", suspend,
                                    hint=reply.text)
            run.suspended.pop(group, None)
        else:
            await relay.slow_down(run.shared, reply.text)
    run.finish(run.outcome(job, reply.code, reply.text, attempted=not reply.local,
                           relay=relay.name))


async def destination_wait(run: Run, job: Job) -> datetime | None:
    """Until when the job's destination is suspended (None: it may go now)."""
    if run.shaper is None:
        return None
    group = _group(run, job)
    now = time.time()
    cached = run.suspended.get(group)
    if cached is None or now - cached[0] > _THROTTLE_REFRESH:
        if len(run.suspended) > _CACHED:
            run.suspended.clear()
        throttle = await asyncio.to_thread(run.shared.throttle, f"dest:{group}")
        cached = run.suspended[group] = (now, throttle.suspended_until)
    if cached[1] > now:
        return datetime.fromtimestamp(cached[1], UTC)
    return None


def _group(run: Run, job: Job) -> str:
    assert run.shaper is not None
    domain = job.claimed.domain or job.message.recipient.rsplit("@", 1)[-1].lower()
    group = run.groups.get(domain)
    if group is None:
        if len(run.groups) > _CACHED:
            run.groups.clear()
        group = run.groups[domain] = run.shaper.group(domain)
    return group
