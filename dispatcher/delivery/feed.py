"""Claim ahead and render ahead, so SMTP sessions never wait for the store or the renderer.

The next batch of deliveries is leased (``queue.claim``, in a thread) while
the previous one is rendered and sent. Rendering goes in chunks: in this
process between the sessions' turns (a whole batch at once held every
connection idle for tens of milliseconds), or in the render pool with a few
chunks in flight. This process renders too until the pool's processes have
started (~1 s), and whenever the pool falls behind and the sessions are about
to run dry (the pool's core is shared with the relay on a small machine). At
most ``room`` rendered messages wait for a session and at most two batches
are leased and unrendered, so memory stays flat whatever the campaign's size.

The campaign's status is read with every claim: pausing or cancelling it
stops the feed, and what was leased but not sent is handed to ``Run.halt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from collections.abc import Callable

import sqlalchemy as sa

from dispatcher.delivery.queue import Claimed, claim, release_dead
from dispatcher.delivery.render_pool import Rendered, RenderPool, render_chunk
from dispatcher.delivery.run import Job, Run
from dispatcher.render import Recipient
from dispatcher.store.database import Store
from dispatcher.store.tables import campaign_t

_LOCAL_CHUNK = 16  # ~1 ms of rendering between the sessions' turns
_POOL_CHUNK = 32
_IDLE = 0.1  # seconds between looks when nothing wakes the feed (a stop request)


def campaign_status(store: Store, campaign_id: int) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(sa.select(campaign_t.c.status)
                                .where(campaign_t.c.id == campaign_id)).scalar() or "")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Feed:
    def __init__(self, run: Run, put: Callable[[Job], None], backlog: Callable[[], int], *,
                 room: int, pool: RenderPool | None) -> None:
        self.run, self.put, self.backlog, self.pool = run, put, backlog, pool
        self.chunk = _POOL_CHUNK if pool is not None else _LOCAL_CHUNK
        self.room = max(room, 2 * self.chunk)
        self.low = max(1, room // 4)  # fewer rendered than this: the sessions may starve
        self.wake_below = self.room // 2
        self.in_flight = 2 * pool.processes if pool is not None else 0
        self.claimed: deque[Claimed] = deque()  # leased, not rendered yet
        self.rendering: deque[tuple[list[Claimed], asyncio.Future[Rendered]]] = deque()
        self.claiming: asyncio.Task[list[Claimed]] | None = None
        self.exhausted = False
        self.unsent: list[Claimed] = []  # after a halt: leased, never handed out
        self._wakeup: asyncio.Future[None] | None = None

    def taken(self) -> None:
        """A session took a job: the feed may have room to render more."""
        if self._wakeup is not None and self.backlog() < self.wake_below:
            self._wake()

    async def produce(self) -> None:
        run = self.run
        try:
            await asyncio.to_thread(release_dead, run.store, run.campaign_id,
                                    host=socket.gethostname(), alive=_alive, now=run.clock())
            while not run.halted:
                if run.stop is not None and run.stop.is_set():
                    run.halted = "stopped"
                    break
                self._claim_ahead()
                claiming = self.claiming
                if claiming is not None and claiming.done():
                    self.claiming = None
                    got = claiming.result()
                    self.claimed.extend(got)
                    self.exhausted = not got
                elif self.rendering and self.rendering[0][1].done():
                    chunk, future = self.rendering.popleft()
                    self._hand_out(chunk, future.result())
                elif self.claimed and self._has_room():
                    pool = self.pool
                    if pool is not None and pool.ready.done() and (
                            len(self.rendering) < self.in_flight):
                        self._submit(pool)
                    elif pool is None or not pool.ready.done() or self.backlog() < self.low:
                        await self._render_here()
                    else:
                        await self._wait(self.low)
                elif self.exhausted and not self.claimed and not self.rendering:
                    break
                else:
                    await self._wait(self.room // 2)
        finally:
            await self._settle()
            run.producing = False
            run.nudge()

    def _claim_ahead(self) -> None:
        if self.claiming is not None or self.exhausted or len(self.claimed) >= self.run.claim_size:
            return
        self.claiming = asyncio.ensure_future(self._claim())
        self.claiming.add_done_callback(self._wake)

    async def _claim(self) -> list[Claimed]:
        run = self.run

        def status_and_claim() -> tuple[str, list[Claimed]]:
            status = campaign_status(run.store, run.campaign_id)
            if status in ("paused", "cancelled"):
                return status, []
            return status, claim(run.store, run.campaign_id, owner=run.owner,
                                 limit=run.claim_size, lease=run.lease, now=run.clock())

        status, got = await asyncio.to_thread(status_and_claim)
        if status in ("paused", "cancelled"):
            run.halted = status
        return got

    def _has_room(self) -> bool:
        rendering = sum(len(chunk) for chunk, _ in self.rendering)
        return self.backlog() + rendering < self.room

    def _next_chunk(self) -> tuple[list[Claimed], list[Recipient]]:
        claimed = self.claimed
        chunk = [claimed.popleft() for _ in range(min(self.chunk, len(claimed)))]
        return chunk, [Recipient(c.subscriber_id, c.email, c.name, c.attributes,
                                 c.variant or None) for c in chunk]

    def _submit(self, pool: RenderPool) -> None:
        chunk, recipients = self._next_chunk()
        future = pool.render(recipients)
        future.add_done_callback(self._wake)
        self.rendering.append((chunk, future))

    async def _render_here(self) -> None:
        chunk, recipients = self._next_chunk()
        self._hand_out(chunk, render_chunk(self.run.renderer, recipients))
        await asyncio.sleep(0)  # the sessions' turn

    def _hand_out(self, chunk: list[Claimed], results: Rendered) -> None:
        run = self.run
        for item, result in zip(chunk, results, strict=True):
            if isinstance(result, str):
                run.render_failed(item, result)
            else:
                job = Job(item, result)
                run.held[item.delivery_id] = job
                self.put(job)
        run.nudge()

    async def _wait(self, wake_below: int) -> None:
        """Until a claim or a render completes, or fewer than ``wake_below`` jobs wait."""
        self.wake_below = wake_below
        loop = asyncio.get_running_loop()
        self._wakeup = loop.create_future()
        timer = loop.call_later(_IDLE, self._wake)
        try:
            await self._wakeup
        finally:
            timer.cancel()
            self._wakeup = None

    def _wake(self, *_: object) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _settle(self) -> None:
        """After a halt (or an error): what was leased and not handed out is unsent."""
        if self.claiming is not None:
            # A failed claim leased nothing (its transaction rolled back).
            with contextlib.suppress(Exception):
                self.claimed.extend(await self.claiming)
            self.claiming = None
        for chunk, future in self.rendering:
            future.cancel()
            self.unsent.extend(chunk)
        self.rendering.clear()
        self.unsent.extend(self.claimed)
        self.claimed.clear()
