"""The engine: claim due deliveries, render them, push them through SMTP, record each reply.

A feed (``feed.py``) leases batches of due deliveries with a lease
(re-checking suppression at claim time) ahead of need and renders them in
chunks, in this process or in a process pool so rendering and sending use
both cores; SMTP sessions (``session.py``), several per relay and several
messages per session, take messages from the queue at the pace the relay's
and the campaign's limits allow (held in the store, see ``pool.py``). A
delivery leaves ``claimed`` only when a server has answered for it (the
lesson of listmonk, whose checkpoint advances on fetch); replies are written
in the background in batches (``recorder.py``), and sessions wait while
``batch`` of them are unwritten, which bounds the duplicates a ``kill -9``
can cause: :attr:`SendSummary.in_flight_window`.

``relay`` may be one relay, a pool, or ``"direct"``: MX lookup per domain,
per-destination shaping (``core/shaping.py``) and opportunistic STARTTLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from dispatcher.core.backoff import RetryPolicy
from dispatcher.core.rates import Limits
from dispatcher.core.shaping import Shaper
from dispatcher.delivery.feed import Feed
from dispatcher.delivery.pool import Relay, RelayPool
from dispatcher.delivery.queue import Outcome, finish_if_done
from dispatcher.delivery.render_pool import RenderPool
from dispatcher.delivery.run import Clock, Job, Run, SendSummary
from dispatcher.delivery.session import session
from dispatcher.render import Renderer
from dispatcher.smtp.client import SMTPClient, Timeouts
from dispatcher.smtp.mx import MXResolver
from dispatcher.smtp.relay import DIRECT, RelayURL
from dispatcher.store.database import Store
from dispatcher.store.stats import report_relay

HEALTH_SECONDS = 1.0

__all__ = ["SendSummary", "send_campaign"]


def _report_health(store: Store, relays: list[Relay], *, final: bool = False) -> None:
    """Publish each relay's open connections, limit and failover state for the dashboard.

    Per relay and at most once a second, so it costs the send nothing measurable; a final
    report with no state hands the relay's health back to what its events say.
    """
    now = time.monotonic()
    for r in relays:
        report_relay(store, r.name, connections=0 if final else r.open_connections,
                     rate_limit=r.limits.per_second, state=None if final else r.health(now))


async def _publish_health(store: Store, relays: list[Relay], done: asyncio.Event) -> None:
    # Ends with the final report in this same task, so no periodic write can land after it.
    while not done.is_set():
        await asyncio.to_thread(_report_health, store, relays)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), HEALTH_SECONDS)
    await asyncio.to_thread(_report_health, store, relays, final=True)


def _now() -> datetime:
    return datetime.now(UTC)


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
    run = Run(store, campaign_id, renderer, batch=batch, lease=lease, clock=clock,
              policy=policy or RetryPolicy(), timeouts=timeouts or Timeouts(),
              flush_seconds=flush_seconds, progress=progress, stop=stop)
    try:
        if relay == DIRECT:
            from dispatcher.delivery.direct import run_direct

            await run_direct(run, pool, mx or MXResolver(), shaper or Shaper.builtin(),
                             port=direct_port, connections=connections)
        else:
            urls = [relay] if isinstance(relay, RelayURL) else [
                u for u in relay if isinstance(u, RelayURL)]
            run.shaper = shaper or Shaper.builtin()
            await _run_relays(run, pool, urls, connections, per_connection, limits or Limits())
    finally:
        if pool is not None:
            pool.close()
    await run.recorder.close()
    run.summary.finished = await asyncio.to_thread(finish_if_done, store, campaign_id)
    return run.summary


async def _run_relays(run: Run, render_pool: RenderPool | None, urls: list[RelayURL],
                      connections: int, per_connection: int, limits: Limits) -> None:
    relays = [Relay(u, u.limits.stricter(limits), connections, per_connection) for u in urls]
    pool = RelayPool(relays)
    rates = [r.limits.per_second for r in relays]
    if all(rates):
        # There is no lease renewal: claim only what the pool can send in half a lease, so a
        # slow, rate-limited claim is never taken over (and sent twice) by another worker.
        # The feed holds up to two claims at once: each gets a quarter.
        quarter_lease = run.lease.total_seconds() / 4
        run.claim_size = max(1, min(run.batch, int(sum(x or 0.0 for x in rates) * quarter_lease)))
    jobs: deque[Job] = deque()
    total = sum(r.connections for r in relays)
    run.summary.in_flight_window = run.batch + total
    run.recorder.bound(run.batch - total)
    feed = Feed(run, jobs.append, jobs.__len__, room=total * 4, pool=render_pool)

    def take(relay: Relay) -> Job | None:
        now = time.monotonic()
        if jobs and not pool.any_usable(now):
            drain(relay)
            return None
        if not jobs or not pool.eligible(relay, now, len(jobs)):
            return None
        relay.taken += 1
        job = jobs.popleft()
        feed.taken()
        return job

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
        feed.taken()

    def requeue(job: Job, relay: Relay) -> None:
        job.tries += 1
        jobs.append(job)
        run.nudge()
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

    sessions = [session(run, r, take, requeue, idle, connect)
                for r in relays for _ in range(r.connections)]
    sent_all = asyncio.Event()
    health = asyncio.create_task(_publish_health(run.store, relays, sent_all))
    try:
        await asyncio.gather(feed.produce(), *sessions)
    finally:
        sent_all.set()
        for relay in relays:
            await relay.give_back(run.shared)
        await health
    if run.halted:
        jobs.clear()
        await run.halt(feed.unsent)
