"""One ``send_campaign`` call's shared state: what it holds, what was answered, when it stops."""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatcher.core.backoff import RetryPolicy
from dispatcher.core.shaping import Shaper
from dispatcher.delivery.limits import SharedLimits
from dispatcher.delivery.outcomes import outcome_for
from dispatcher.delivery.queue import Claimed, Outcome, release
from dispatcher.delivery.recorder import Recorder
from dispatcher.render import RenderedMessage, Renderer
from dispatcher.smtp.client import Timeouts
from dispatcher.store.database import Store

Clock = Callable[[], datetime]
_MAX_ERRORS = 100  # render errors kept for the summary (the command shows five)


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
    message: RenderedMessage  # its data is the DATA payload (render_pool.render_chunk)
    tries: int = 0  # times a relay could not be reached for it


class Run:
    def __init__(self, store: Store, campaign_id: int, renderer: Renderer, *, batch: int,
                 lease: timedelta, clock: Clock, policy: RetryPolicy, timeouts: Timeouts,
                 flush_seconds: float, progress: Callable[[Outcome], None] | None,
                 stop: asyncio.Event | None) -> None:
        self.store, self.campaign_id, self.renderer = store, campaign_id, renderer
        self.batch, self.lease, self.clock, self.policy = batch, lease, clock, policy
        self.claim_size = batch
        self.timeouts, self.progress, self.stop = timeouts, progress, stop
        self.recorder = Recorder(store, campaign_id, limit=batch, flush_seconds=flush_seconds,
                                 clock=clock)
        self.shared = SharedLimits(store)
        self.summary = SendSummary()
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.producing = True
        self.halted = ""  # paused / cancelled / stopped
        self.held: dict[int, Job] = {}  # rendered, not answered yet: released on a halt
        self.rng = random.Random()
        self.helo = renderer.sending.domain
        self.shaper: Shaper | None = None  # per-destination backoff in relay mode
        self.suspended: dict[str, tuple[float, float]] = {}
        self.groups: dict[str, str] = {}  # domain -> MX group, in relay mode
        self._work = asyncio.Event()

    def finish(self, outcome: Outcome) -> None:
        self.held.pop(outcome.claimed.delivery_id, None)
        self.recorder.add(outcome)
        self.summary.outcomes[outcome.state] += 1
        if self.progress:
            self.progress(outcome)

    def render_failed(self, claimed: Claimed, error: str) -> None:
        """A broken template or a hostile value fails this recipient only."""
        if len(self.summary.errors) < _MAX_ERRORS:
            self.summary.errors.append(error)
        self.finish(Outcome(claimed, "failed", None, None, error, kind="soft", reason="render",
                            attempted=False))

    def outcome(self, job: Job, code: int | None, text: str, *, relay: str = "",
                attempted: bool = True, not_before: datetime | None = None,
                status: str | None = None) -> Outcome:
        message = job.message
        return outcome_for(job.claimed, code, text, now=self.clock(), policy=self.policy,
                           message_id=message.message_id, variant=message.variant,
                           status=status, not_before=not_before, attempted=attempted,
                           rng=self.rng, relay=relay)

    def nudge(self) -> None:
        """Work came (or the feed ended): idle sessions look again."""
        self._work.set()

    async def wait_for_work(self, timeout: float = 0.05) -> None:
        # The timeout covers what nobody nudges for: a relay's cool-down or quota window ending.
        self._work.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._work.wait()
        except TimeoutError:
            pass

    async def halt(self, pending: list[Claimed]) -> None:
        """Paused or stopped: unsent claims go back to the queue; cancelled: they are skipped."""
        pending = [*pending, *(job.claimed for job in self.held.values())]
        self.held.clear()
        if self.halted == "cancelled":
            for claimed in pending:
                self.finish(Outcome(claimed, "skipped", None, None,
                                    "not sent: campaign cancelled", attempted=False))
        else:
            await asyncio.to_thread(release, self.store, [c.delivery_id for c in pending],
                                    now=self.clock())
        self.summary.stopped = self.halted if self.halted != "stopped" else ""
