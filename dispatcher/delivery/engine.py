"""The engine: claim due deliveries, render them, push them through SMTP, record each reply.

A producer claims batches with a lease (re-checking suppression at claim
time), renders them (in a process pool when asked, so rendering and sending
use both cores) and queues them; SMTP sessions, several per relay and several
messages per session, take messages from the queue at the pace the relay's
and the campaign's limits allow (held in the store, see ``pool.py``). A
delivery leaves ``claimed`` only when a server has answered for it (the
lesson of listmonk, whose checkpoint advances on fetch); outcomes are written
in batches, at most ``batch`` of them or ``flush_seconds`` old, which bounds
the duplicates a ``kill -9`` can cause to those answered but not yet written:
:attr:`SendSummary.in_flight_window`.

``relay`` may be one relay, a pool, or ``"direct"``: MX lookup per domain,
per-destination shaping (``core/shaping.py``) and opportunistic STARTTLS.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dispatcher.core.backoff import RetryPolicy
from dispatcher.core.rates import Limits, is_throttle
from dispatcher.core.shaping import Shaper
from dispatcher.delivery.limits import SharedLimits
from dispatcher.delivery.outcomes import outcome_for
from dispatcher.delivery.pool import Relay, RelayPool
from dispatcher.delivery.queue import (
    Claimed,
    Outcome,
    claim,
    finish_if_done,
    record,
    release,
    release_dead,
)
from dispatcher.delivery.render_pool import RenderPool
from dispatcher.errors import SMTPError
from dispatcher.render import Recipient, RenderedMessage, Renderer
from dispatcher.smtp.client import SMTPClient, Timeouts, prepare_data
from dispatcher.smtp.mx import MXError, MXResolver
from dispatcher.smtp.relay import DIRECT, RelayURL
from dispatcher.store.database import Store
from dispatcher.store.models import Campaign

Clock = Callable[[], datetime]
_campaign = Campaign.__table__  # type: ignore[attr-defined]


@dataclass
class SendSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    finished: bool = False
    stopped: str = ""  # "paused" | "cancelled" | "" (ran until nothing was due)
    errors: list[str] = field(default_factory=list)
    in_flight_window: int = 0  # answered-but-unrecorded messages a crash could resend


@dataclass
class Job:
    claimed: Claimed
    message: RenderedMessage | None
    payload: bytes = b""
    tries: int = 0  # times a relay could not be reached for it


def _now() -> datetime:
    return datetime.now(UTC)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def campaign_status(store: Store, campaign_id: int) -> str:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        return str(conn.execute(sa.select(_campaign.c.status)
                                .where(_campaign.c.id == campaign_id)).scalar() or "")


class _Run:
    """One ``send_campaign`` call's moving parts."""

    def __init__(self, store: Store, campaign_id: int, renderer: Renderer, *, batch: int,
                 lease: timedelta, clock: Clock, policy: RetryPolicy, timeouts: Timeouts,
                 flush_seconds: float, progress: Callable[[Outcome], None] | None,
                 render_pool: RenderPool | None, stop: asyncio.Event | None) -> None:
        self.store, self.campaign_id, self.renderer = store, campaign_id, renderer
        self.batch, self.lease, self.clock, self.policy = batch, lease, clock, policy
        self.claim_size = batch
        self.timeouts, self.flush_seconds, self.progress = timeouts, flush_seconds, progress
        self.render_pool, self.stop = render_pool, stop
        self.shared = SharedLimits(store)
        self.summary = SendSummary()
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.done: list[Outcome] = []
        self.last_flush = time.monotonic()
        self.producing = True
        self.halted = ""  # paused / cancelled / stop
        self.held: dict[int, Job] = {}  # claimed and not yet answered, for release on halt
        self.rng = random.Random()
        self.helo = renderer.sending.domain
        self.shaper: Shaper | None = None  # per-destination backoff in relay mode
        self.suspended: dict[str, tuple[float, float]] = {}

    # -- recording -------------------------------------------------------------------------
    def finish(self, outcome: Outcome) -> None:
        self.held.pop(outcome.claimed.delivery_id, None)
        self.done.append(outcome)
        self.summary.outcomes[outcome.state] += 1
        if self.progress:
            self.progress(outcome)

    async def flush(self, relay: str = "", force: bool = False) -> None:
        due = force or len(self.done) >= self.batch or (
            time.monotonic() - self.last_flush > self.flush_seconds)
        if self.done and due:
            chunk, self.done = self.done, []
            self.last_flush = time.monotonic()
            await asyncio.to_thread(record, self.store, self.campaign_id, chunk,
                                    relay=relay, now=self.clock())

    def outcome(self, job: Job, code: int | None, text: str, *, attempted: bool = True,
                not_before: datetime | None = None, status: str | None = None) -> Outcome:
        message = job.message
        return outcome_for(job.claimed, code, text, now=self.clock(), policy=self.policy,
                           message_id=message.message_id if message else None,
                           variant=message.variant if message else "", status=status,
                           not_before=not_before, attempted=attempted, rng=self.rng)

    # -- producing -------------------------------------------------------------------------
    async def produce(self, queue: Callable[[Job], None], backlog: Callable[[], int],
                      room: int) -> None:
        try:
            await asyncio.to_thread(release_dead, self.store, self.campaign_id,
                                    host=socket.gethostname(), alive=_alive, now=self.clock())
            while not self.halted:
                status = await asyncio.to_thread(campaign_status, self.store, self.campaign_id)
                if status in ("paused", "cancelled"):
                    self.halted = status
                    break
                if self.stop is not None and self.stop.is_set():
                    self.halted = "stopped"
                    break
                while backlog() > room and not self.halted:
                    await asyncio.sleep(0.02)
                    await self.flush()
                claimed = await asyncio.to_thread(
                    claim, self.store, self.campaign_id, owner=self.owner, limit=self.claim_size,
                    lease=self.lease, now=self.clock())
                if not claimed:
                    break
                for job in await self.render(claimed):
                    if job.message is None:
                        continue
                    self.held[job.claimed.delivery_id] = job
                    queue(job)
                await self.flush()
        finally:
            self.producing = False

    async def render(self, claimed: list[Claimed]) -> list[Job]:
        recipients = [Recipient(c.subscriber_id, c.email, c.name, c.attributes,
                                c.variant or None) for c in claimed]
        if self.render_pool is not None:
            results = await self.render_pool.render(recipients)
        else:
            results = [self.render_one(r) for r in recipients]
        jobs = []
        for item, result in zip(claimed, results, strict=True):
            if isinstance(result, str):
                # A broken template or a hostile value fails this recipient only.
                self.summary.errors.append(result)
                self.finish(Outcome(item, "failed", None, None, result, kind="soft",
                                    reason="render", attempted=False))
                jobs.append(Job(item, None))
            else:
                jobs.append(Job(item, result, prepare_data(result.data)))
        return jobs

    def render_one(self, recipient: Recipient) -> RenderedMessage | str:
        from dispatcher.errors import DispatcherError

        try:
            return self.renderer.render(recipient)
        except DispatcherError as exc:
            return str(exc)

    async def halt(self, pending: list[Job]) -> None:
        """Paused or stopped: unsent claims go back to the queue; cancelled: they are skipped."""
        if self.halted == "cancelled":
            for job in pending:
                self.finish(Outcome(job.claimed, "skipped", None, None,
                                    "not sent: campaign cancelled", attempted=False))
        else:
            ids = [job.claimed.delivery_id for job in pending]
            for job in pending:
                self.held.pop(job.claimed.delivery_id, None)
            await asyncio.to_thread(release, self.store, ids, now=self.clock())
        self.summary.stopped = self.halted if self.halted != "stopped" else ""

    # -- one SMTP session ------------------------------------------------------------------
    async def session(self, relay: Relay, take: Callable[[Relay], Job | None],
                      requeue: Callable[[Job, Relay], None], idle: Callable[[], bool],
                      connect: Callable[[Relay], SMTPClient],
                      resolve: Callable[[Relay], object] | None = None) -> None:
        client: SMTPClient | None = None
        try:
            while True:
                if self.halted:
                    return
                job = take(relay)
                if job is None:
                    if idle():
                        return
                    await asyncio.sleep(0.01)
                    continue
                assert job.message is not None
                until = await self.destination_wait(job)
                if until is not None:
                    self.finish(self.outcome(
                        job, None, f"not tried: destination suspended until {until:%H:%M:%S} "
                        "after it asked us to slow down", attempted=False, not_before=until))
                    continue
                if await relay.pace(self.shared) is None:
                    requeue(job, relay)  # quota used up: another relay, or a later pass
                    continue
                if client is None or not client.connected or (
                        client.messages_sent >= relay.per_connection):
                    if client is not None:
                        await client.quit()
                    client = connect(relay)
                    try:
                        await client.connect()
                    except MXError as exc:
                        client = None
                        self.finish(self.outcome(job, 550 if exc.permanent else None,
                                                 f"{exc.status} {exc}", status=exc.status))
                        continue
                    except SMTPError as exc:
                        client = None
                        relay.failed(time.monotonic(), str(exc))
                        if exc.code is not None and is_throttle(exc.code, exc.text):
                            await relay.slow_down(self.shared, exc.text)
                        requeue(job, relay)
                        continue
                await self.deliver(relay, client, job)
                await self.flush(relay.name)
        finally:
            if client is not None:
                await client.quit()

    async def deliver(self, relay: Relay, client: SMTPClient, job: Job) -> None:
        message = job.message
        assert message is not None
        try:
            result = await client.send(message.envelope_from, [message.recipient], job.payload,
                                       prepared=True)
        except SMTPError as exc:
            # No reply for this message: it may or may not have arrived; retry later.
            self.finish(self.outcome(job, None, f"{relay.name}: {exc}"))
            return
        reply = result.replies[message.recipient]
        if 200 <= reply.code < 300:
            relay.worked()
        elif is_throttle(reply.code, reply.text):
            if self.shaper is not None and reply is not result.data_reply and reply.code != 421:
                # Refused at RCPT by a relay passing on the destination's "slow down":
                # that destination (MX group) backs off, other mail keeps flowing.
                group = self.shaper.group(job.claimed.domain or _domain(message.recipient))
                suspend = self.shaper.shape(group).suspend_seconds
                await asyncio.to_thread(self.shared.slow_down, f"dest:{group}", suspend,
                                        hint=reply.text)
                self.suspended.pop(group, None)
            else:
                await relay.slow_down(self.shared, reply.text)
        self.finish(self.outcome(job, reply.code, reply.text, attempted=not reply.local))

    async def destination_wait(self, job: Job) -> datetime | None:
        """Until when the job's destination is suspended (None: it may go now)."""
        if self.shaper is None or job.message is None:
            return None
        group = self.shaper.group(job.claimed.domain or _domain(job.message.recipient))
        now = time.time()
        cached = self.suspended.get(group)
        if cached is None or now - cached[0] > 2.0:
            throttle = await asyncio.to_thread(self.shared.throttle, f"dest:{group}")
            cached = self.suspended[group] = (now, throttle.suspended_until)
        if cached[1] > now:
            return datetime.fromtimestamp(cached[1], UTC)
        return None


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower()


async def send_campaign(store: Store, campaign_id: int, renderer: Renderer,
                        relay: RelayURL | Sequence[RelayURL] | str, *,
                        connections: int = 4, per_connection: int = 100, batch: int = 200,
                        lease: timedelta = timedelta(minutes=5), clock: Clock = _now,
                        progress: Callable[[Outcome], None] | None = None,
                        policy: RetryPolicy | None = None, limits: Limits | None = None,
                        timeouts: Timeouts | None = None, flush_seconds: float = 0.5,
                        render_processes: int = 0,
                        render_factory: Callable[[], Renderer] | None = None,
                        mx: MXResolver | None = None, direct_port: int = 25,
                        shaper: Shaper | None = None,
                        stop: asyncio.Event | None = None) -> SendSummary:
    """Send every due delivery of the campaign once; deferred ones wait for their retry time."""
    if isinstance(relay, str) and relay != DIRECT:
        raise ValueError(f"relay must be a RelayURL, a list of them or {DIRECT!r}")
    pool = RenderPool(render_factory, render_processes) if (
        render_processes > 0 and render_factory is not None) else None
    run = _Run(store, campaign_id, renderer, batch=batch, lease=lease, clock=clock,
               policy=policy or RetryPolicy(), timeouts=timeouts or Timeouts(),
               flush_seconds=flush_seconds, progress=progress, render_pool=pool, stop=stop)
    try:
        if relay == DIRECT:
            from dispatcher.delivery.direct import run_direct

            await run_direct(run, mx or MXResolver(), shaper or Shaper.builtin(),
                             port=direct_port, connections=connections)
        else:
            urls = [relay] if isinstance(relay, RelayURL) else [
                u for u in relay if isinstance(u, RelayURL)]
            run.shaper = shaper or Shaper.builtin()
            await _run_relays(run, urls, connections, per_connection, limits or Limits())
    finally:
        if pool is not None:
            pool.close()
    await run.flush(force=True)
    run.summary.finished = await asyncio.to_thread(finish_if_done, store, campaign_id)
    return run.summary


async def _run_relays(run: _Run, urls: list[RelayURL], connections: int, per_connection: int,
                      limits: Limits) -> None:
    relays = [Relay(u, u.limits.stricter(limits), connections, per_connection) for u in urls]
    pool = RelayPool(relays)
    rates = [r.limits.per_second for r in relays]
    if all(rates):
        # There is no lease renewal: claim only what the pool can send in half a lease, so a
        # slow, rate-limited claim is never taken over (and sent twice) by another worker.
        half_lease = run.lease.total_seconds() / 2
        run.claim_size = max(1, min(run.batch, int(sum(x or 0.0 for x in rates) * half_lease)))
    jobs: deque[Job] = deque()
    total = sum(r.connections for r in relays)
    run.summary.in_flight_window = run.batch + total

    def take(relay: Relay) -> Job | None:
        now = time.monotonic()
        if jobs and not pool.any_usable(now):
            drain(relay)
            return None
        if not jobs or not pool.eligible(relay, now, len(jobs)):
            return None
        relay.taken += 1
        return jobs.popleft()

    def drain(relay: Relay) -> None:
        """Every relay is out: defer what waits (retried with backoff) rather than spin."""
        wait = pool.next_ready(time.monotonic())
        while jobs:
            job = jobs.pop()
            last = [r.last_error for r in relays if r.last_error]
            run.finish(run.outcome(
                job, None, f"no relay could take it: {last[0] if last else 'quota used up'}",
                attempted=bool(last),
                not_before=None if last else run.clock() + timedelta(seconds=wait)))

    def requeue(job: Job, relay: Relay) -> None:
        job.tries += 1
        jobs.append(job)
        if job.tries > 3 * len(relays):
            drain(relay)

    def idle() -> bool:
        # Not just "nothing queued": a job another session holds may still come back
        # (its relay turned out to be down or at its quota) and need this session.
        return not run.producing and not run.held

    def connect(relay: Relay) -> SMTPClient:
        u = relay.url
        return SMTPClient(u.host, u.port, helo=u.helo or run.helo, implicit_tls=u.implicit_tls,
                          starttls=u.starttls, verify_tls=u.verify_tls, username=u.username,
                          password=u.password,
                          timeouts=Timeouts.all(u.timeout) if u.timeout != 60.0
                          else run.timeouts)

    sessions = [run.session(r, take, requeue, idle, connect)
                for r in relays for _ in range(r.connections)]
    try:
        await asyncio.gather(run.produce(jobs.append, jobs.__len__, total * 4), *sessions)
    finally:
        for relay in relays:
            await relay.give_back(run.shared)
    if run.halted:
        await run.halt(list(run.held.values()))
        jobs.clear()
