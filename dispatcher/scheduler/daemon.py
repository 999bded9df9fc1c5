"""The daemon's work, one ``tick`` at a time: start what is due, send what is running.

A tick (every second under ``dispatcher serve``; called directly by tests
with a fake clock) does, in order:

1. scheduled campaigns more than ``grace`` late become ``missed``;
2. due ones are started, each by exactly one daemon (``records.claim_start``),
   which queues the audience and plans ``local_time`` sends;
3. every running campaign this daemon holds (or whose daemon died) gets a
   sending pass unless one is under way: windows and warm-up caps are applied
   to the queue first, then the delivery engine sends what is due.

Shutdown tells the engine to stop claiming (it gives back what it claimed
but did not send), lets passes drain, cancels what is left after
``drain_seconds`` and gives any deliveries still claimed by this process back
to the queue. A pass also stops when a sender-zone window closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from pydantic import ValidationError

from dispatcher.config import Workspace
from dispatcher.core.campaign import Campaign as CampaignDefinition
from dispatcher.core.rates import Limits
from dispatcher.core.schedule import (
    SchedulerConfig,
    SendWindow,
    day_start,
    parse_clock,
    zone,
)
from dispatcher.delivery import enqueue, send_campaign
from dispatcher.delivery.queue import finish_if_done
from dispatcher.errors import DispatcherError
from dispatcher.render import Renderer
from dispatcher.scheduler import planning, records
from dispatcher.scheduler.cron import cron_trigger, last_run
from dispatcher.smtp.relay import RelayChoice, choose_relays, open_relays
from dispatcher.store import stats
from dispatcher.store.database import Store
from dispatcher.store.tables import campaign_t

Clock = Callable[[], datetime]
log = logging.getLogger("dispatcher.scheduler")


def utcnow() -> datetime:
    return datetime.now(UTC)


def process_owner() -> str:
    """The lease owner name the delivery engine uses for this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def campaign_limits(campaign: CampaignDefinition) -> Limits:
    """The campaign's own ``rate:`` (the engine applies the stricter of it and the relay's)."""
    rate = campaign.rate
    return Limits(rate.per_second, *(int(v) if v is not None else None
                                     for v in (rate.per_minute, rate.per_hour, rate.per_day)))


@dataclass
class _Run:
    name: str
    definition: CampaignDefinition
    renderer: Renderer
    relays: list[RelayChoice]


class Daemon:
    def __init__(self, store: Store, workspace: Workspace,
                 config: SchedulerConfig | None = None, *, clock: Clock = utcnow,
                 batch: int = 50, owner: str | None = None) -> None:
        self.store = store
        self.workspace = workspace
        self.config = config or SchedulerConfig()
        self.clock = clock
        self.batch = batch
        # Who holds a campaign's runner lease; the delivery engine leases rows to
        # the process (process_owner), which is what shutdown gives back.
        self.owner = owner or process_owner()
        self.stopping = False
        self.passes: dict[int, asyncio.Task[None]] = {}
        self._runs: dict[int, _Run] = {}
        self._tick_lock = asyncio.Lock()
        self._stops: set[asyncio.Event] = set()
        # More periodic work for housekeeping (bounce intake, from `serve`'s options).
        self.chores: list[Callable[[], Awaitable[None]]] = []

    @property
    def runner_lease(self) -> timedelta:
        # Long enough to survive a slow tick, short enough that a dead daemon's
        # campaigns are taken over within a minute.
        return timedelta(seconds=max(60.0, self.config.tick_seconds * 10))

    async def tick(self) -> None:
        if self.stopping:
            return
        async with self._tick_lock:
            now = self.clock()
            grace = self.config.grace
            for name in await asyncio.to_thread(records.mark_missed, self.store, now, grace):
                log.warning("campaign %s missed its time (more than %s ago); not sent", name,
                            grace, extra={"campaign": name, "event": "missed"})
            for cid in await asyncio.to_thread(records.due, self.store, now):
                if self.stopping:
                    return
                if await asyncio.to_thread(records.claim_start, self.store, cid,
                                           owner=self.owner, now=now, lease=self.runner_lease):
                    await self._start(cid, now)
            for cid in await asyncio.to_thread(records.take_runs, self.store, owner=self.owner,
                                               now=now, lease=self.runner_lease):
                task = self.passes.get(cid)
                if (task is None or task.done()) and not self.stopping:
                    self.passes[cid] = asyncio.create_task(self._pass(cid), name=f"pass-{cid}")

    async def wait_passes(self) -> None:
        """Wait for the passes under way (tests call this after a tick)."""
        while pending := [t for t in self.passes.values() if not t.done()]:
            await asyncio.gather(*pending)

    def _load(self, cid: int) -> _Run | None:
        if cid in self._runs:
            return self._runs[cid]
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(campaign_t).where(campaign_t.c.id == cid)).one()
        try:
            definition = CampaignDefinition.model_validate(row.definition)
            renderer = Renderer(definition, root=self.workspace.root,
                                sending=self.workspace.config.sending,
                                secret=self.store.secret(), campaign_id=cid, clock=self.clock)
            relays = choose_relays(self._relay_spec(row.name, row.relay),
                                   definition.relay_pool, self.workspace.config.relays)
        except (DispatcherError, ValidationError) as exc:
            records.set_status(self.store, cid, "paused", f"cannot send: {exc}",
                               now=self.clock())
            log.error("campaign %s paused: %s", row.name, exc,
                      extra={"campaign": row.name, "event": "error"})
            return None
        run = self._runs[cid] = _Run(row.name, definition, renderer, relays)
        return run

    def _relay_spec(self, name: str, stored: str) -> str | None:
        entries = {e.name: e for e in records.all_entries(self.store)}
        found = entries.get(name)
        if found is None:
            parents = [e for e in entries.values()
                       if e.kind == "cron" and name.startswith(e.name + "-")]
            found = max(parents, key=lambda e: len(e.name), default=None)
        if found is not None:
            return str(found.relay) or None
        # A relay recorded by `send --relay URL` (without credentials, which are
        # never stored) is the one to finish with; a named one comes from the pool.
        return stored if stored and "@" not in stored else None

    async def _start(self, cid: int, now: datetime) -> None:
        run = await asyncio.to_thread(self._load, cid)
        if run is None:
            return
        added = await asyncio.to_thread(enqueue, self.store, cid, run.definition)
        schedule = run.definition.schedule
        planned = 0
        if schedule is not None and schedule.local_time:
            planned = await asyncio.to_thread(
                planning.plan_local_time, self.store, cid, parse_clock(schedule.local_time),
                self._zones(run), start=now, grace=self.config.grace)
        log.info("campaign %s started: %d deliveries queued, %d timed to local %s", run.name,
                 added, planned, schedule.local_time if schedule else None,
                 extra={"campaign": run.name, "event": "started", "queued": added})

    def _zones(self, run: _Run) -> planning.ZoneResolver:
        schedule = run.definition.schedule
        attribute = (schedule.timezone_attribute if schedule else None) \
            or self.config.timezone_attribute
        default = (schedule.timezone if schedule else None) or self.config.default_timezone
        return planning.ZoneResolver(attribute, default)

    def _gate(self, cid: int, run: _Run, now: datetime) -> tuple[bool, datetime | None]:
        """Apply the window and the warm-up cap to the queue.

        Returns whether anything may go now, and when a sender-zone window closes.
        """
        closes: datetime | None = None
        schedule = run.definition.schedule
        if schedule is not None and schedule.window is not None:
            w = schedule.window
            window = SendWindow.parse(w.days, w.hours)
            where = (w.zone or "sender").strip()
            if where == "recipient":
                planning.park_outside_window(self.store, cid, window, self._zones(run),
                                             now=now)
            else:
                tz = zone(schedule.timezone or self.config.default_timezone) \
                    if where == "sender" else zone(where)
                opens = window.next_open(now, tz)
                if opens > now:
                    parked = planning.hold_over(self.store, cid, 0, until=opens, now=now)
                    if parked:
                        log.info("campaign %s paused until its window opens at %s",
                                 run.name, opens.isoformat(),
                                 extra={"campaign": run.name, "event": "window"})
                    return False, None
                closes = window.closes_after(now, tz)
        key = self._warmup_key(run)
        if key is not None:
            left = self._warmup_left(key, now)
            tomorrow = day_start(now) + timedelta(days=1)
            held = planning.hold_over(self.store, cid, left, until=tomorrow, now=now)
            if held:
                log.info("campaign %s: warm-up cap for %s reached, %d wait for %s", run.name,
                         key, held, tomorrow.date().isoformat(),
                         extra={"campaign": run.name, "event": "warmup", "held": held})
            if left <= 0:
                return False, None
        return planning.count_due(self.store, cid, now) > 0, closes

    def _warmup_key(self, run: _Run) -> str | None:
        warmup = self.config.warmup
        if warmup.per == "domain":
            name = run.definition.sender.address.rsplit("@", 1)[-1].lower()
        else:
            name = run.definition.relay or (run.definition.relays[0] if run.definition.relays
                                            else "default")
        return f"{warmup.per}:{name}" if name in warmup.keys else None

    def _warmup_left(self, key: str, now: datetime) -> int:
        warmup = self.config.warmup
        started = warmup.keys[key.split(":", 1)[1]]
        cap = warmup.cap(started, now.astimezone(UTC).date())
        return cap - records.warmup_used(self.store, key, day_start(now))

    async def _pass(self, cid: int) -> None:
        try:
            await self._send_pass(cid)
        except Exception:
            log.exception("sending pass of campaign %d failed; retried next tick", cid,
                          extra={"campaign_id": cid, "event": "error"})

    async def _send_pass(self, cid: int) -> None:
        run = await asyncio.to_thread(self._load, cid)
        if run is None:
            return
        now = self.clock()
        if not await asyncio.to_thread(records.has_deliveries, self.store, cid):
            # Started, but its daemon died before queueing the audience: queue it now.
            await self._start(cid, now)
        go, closes = await asyncio.to_thread(self._gate, cid, run, now)
        if not go:
            if await asyncio.to_thread(finish_if_done, self.store, cid):
                await self._finished(cid, run)
            return
        stop = asyncio.Event()
        self._stops.add(stop)
        timer = None
        if closes is not None:
            timer = asyncio.get_running_loop().call_later(
                max((closes - now).total_seconds(), 0), stop.set)
        rate = run.definition.rate
        first = run.relays[0]
        try:
            with open_relays(run.relays, self.workspace.outbox) as urls:
                summary = await send_campaign(
                    self.store, cid, run.renderer, urls,
                    connections=rate.connections or first.max_connections,
                    per_connection=rate.per_connection or first.max_messages_per_connection,
                    batch=self.batch, clock=self.clock, limits=campaign_limits(run.definition),
                    stop=stop)
        finally:
            self._stops.discard(stop)
            if timer is not None:
                timer.cancel()
        # What reached a relay counts against the warm-up cap; render failures and
        # recipients skipped at claim time (suppressed since queueing) do not.
        attempted = sum(summary.outcomes[k] for k in ("sent", "deferred", "bounced"))
        key = self._warmup_key(run)
        if key is not None:
            await asyncio.to_thread(records.warmup_add, self.store, key, day_start(now),
                                    attempted)
        log.info("campaign %s: pass sent %d, deferred %d, bounced %d, failed %d", run.name,
                 summary.outcomes["sent"], summary.outcomes["deferred"],
                 summary.outcomes["bounced"], summary.outcomes["failed"],
                 extra={"campaign": run.name, "event": "pass", **dict(summary.outcomes)})
        for error in summary.errors[:5]:
            log.error("campaign %s: %s", run.name, error,
                      extra={"campaign": run.name, "event": "failed"})
        if summary.finished:
            await self._finished(cid, run)

    async def _finished(self, cid: int, run: _Run) -> None:
        await asyncio.to_thread(records.drop_runner, self.store, owner=self.owner,
                                campaign_id=cid)
        self._runs.pop(cid, None)
        log.info("campaign %s finished", run.name,
                 extra={"campaign": run.name, "event": "finished"})

    async def housekeeping(self) -> None:
        """Expire dead workers' leases, roll up statistics for the dashboard, run the chores."""
        for chore in (self._expire_leases, self._rollup, *self.chores):
            try:
                await chore()
            except Exception:
                log.exception("housekeeping: %s failed; retried next round",
                              getattr(chore, "__name__", chore), extra={"event": "error"})

    async def _expire_leases(self) -> None:
        expired = await asyncio.to_thread(records.expire_leases, self.store, now=self.clock())
        if expired:
            log.info("%d deliveries whose worker stopped answering are queued again", expired,
                     extra={"event": "leases", "expired": expired})

    async def _rollup(self) -> None:
        await asyncio.to_thread(stats.rollup, self.store, self.clock())

    async def stop(self) -> None:
        """Stop claiming, let passes finish (up to ``drain_seconds``), give back the rest."""
        self.stopping = True
        for event in self._stops:
            event.set()
        pending = [t for t in self.passes.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.config.drain_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        released = await asyncio.to_thread(records.release_leases, self.store,
                                           owner=process_owner(), now=self.clock())
        await asyncio.to_thread(records.drop_runner, self.store, owner=self.owner)
        log.info("stopped; %d claimed deliveries given back to the queue", released,
                 extra={"event": "stopped", "released": released})

    async def fire_cron(self, name: str, at: datetime | None = None, *,
                        status: str = "scheduled") -> str | None:
        """Make the campaign instance of recurring schedule ``name`` for the run at ``at``.

        The instance is named after its local run time, so two daemons firing
        the same run make one campaign; the next tick starts it.
        """
        parent = next((e for e in await asyncio.to_thread(records.all_entries, self.store)
                       if e.name == name and e.kind == "cron"), None)
        if parent is None:
            return None
        when = at
        if when is None:
            trigger = cron_trigger(parent.cron, parent.timezone)
            when = last_run(trigger, self.clock(), within=self.config.grace + timedelta(minutes=1))
            if when is None:
                return None
        when = when.astimezone(UTC)
        local = when.astimezone(zone(parent.timezone))
        instance = f"{name}-{local:%Y%m%d-%H%M}"
        definition = dict(parent.definition)
        definition["name"] = instance
        definition["variables"] = {**definition.get("variables", {}),
                                   "run_date": local.date().isoformat(),
                                   "run_at": local.isoformat()}
        made = await asyncio.to_thread(records.create_instance, self.store, parent, instance,
                                       definition, at=when, status=status, now=self.clock())
        if made:
            log.log(logging.WARNING if status == "missed" else logging.INFO,
                    "recurring schedule %s: run %s %s", name, instance, status,
                    extra={"campaign": instance, "event": f"cron-{status}"})
        return instance if made else None
