"""``dispatcher serve``'s event loop: APScheduler, the daemon's jobs, signals.

Two job stores: recurring campaign schedules (``cron:NAME``) live in the
SQLAlchemy job store in the dispatcher database, so they survive restarts
and APScheduler can tell a run missed while the daemon was down; the tick and
housekeeping jobs are per process and live in memory (two daemons must each
run their own, not take turns at one row).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dispatcher.core.schedule import ScheduleError
from dispatcher.scheduler import jobs, records
from dispatcher.scheduler.cron import cron_trigger
from dispatcher.scheduler.daemon import Daemon
from dispatcher.scheduler.services import SideServices

log = logging.getLogger("dispatcher.scheduler")
CRON_PREFIX = "cron:"


def build_scheduler(daemon: Daemon) -> AsyncIOScheduler:
    grace = max(1, int(daemon.config.grace.total_seconds()))
    scheduler = AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=daemon.store.engine),
                   "local": MemoryJobStore()},
        # A run missed by more than the grace is reported missed, never sent late;
        # several missed runs of one schedule collapse into one.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=UTC,
    )
    tick = daemon.config.tick_seconds
    scheduler.add_job(jobs.TICK, "interval", seconds=tick, id="tick", jobstore="local",
                      replace_existing=True, misfire_grace_time=max(1, int(tick * 5)))
    scheduler.add_job(jobs.HOUSEKEEPING, "interval", seconds=daemon.config.housekeeping_seconds,
                      id="housekeeping", jobstore="local", replace_existing=True,
                      misfire_grace_time=max(1, int(daemon.config.housekeeping_seconds)))

    def missed(event: JobExecutionEvent) -> None:
        if event.job_id.startswith(CRON_PREFIX):
            name = event.job_id.removeprefix(CRON_PREFIX)
            asyncio.get_running_loop().create_task(
                daemon.fire_cron(name, event.scheduled_run_time, status="missed"))

    scheduler.add_listener(missed, EVENT_JOB_MISSED)
    return scheduler


def sync_cron(scheduler: AsyncIOScheduler, daemon: Daemon) -> None:
    """Make the job store's ``cron:`` jobs match the recurring schedules in the store."""
    grace = max(1, int(daemon.config.grace.total_seconds()))
    wanted: dict[str, Any] = {}
    for entry in records.all_entries(daemon.store):
        if entry.kind == "cron":
            wanted[CRON_PREFIX + entry.name] = entry
    for job in scheduler.get_jobs(jobstore="default"):
        if job.id.startswith(CRON_PREFIX) and job.id not in wanted:
            scheduler.remove_job(job.id, jobstore="default")
    for job_id, entry in wanted.items():
        try:
            trigger = cron_trigger(entry.cron, entry.timezone)
        except ScheduleError as exc:
            # Checked when scheduled; a zone can still vanish with a tzdata update.
            log.error("recurring schedule %s cannot run: %s", entry.name, exc,
                      extra={"campaign": entry.name, "event": "error"})
            continue
        job = scheduler.get_job(job_id, jobstore="default")
        # Re-adding an unchanged job would reset its next run time and lose a run
        # that was missed while the daemon was down. A job stored with APScheduler's own
        # CronTrigger (which hangs on a clocks-go-back night) prints the same: replaced.
        if (job is not None and type(job.trigger) is type(trigger)
                and str(job.trigger) == str(trigger)):
            continue
        scheduler.add_job(jobs.FIRE_CRON, trigger, args=[entry.name], id=job_id,
                          jobstore="default", replace_existing=True, misfire_grace_time=grace,
                          coalesce=True)


async def serve(daemon: Daemon, services: SideServices | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    jobs.install(daemon)
    scheduler = build_scheduler(daemon)
    if services is not None:
        services.start()
        daemon.chores.append(services.poll_bounces)
    scheduler.start()
    try:
        sync_cron(scheduler, daemon)
        log.info("serving: %s, tick %ss, grace %s", daemon.owner, daemon.config.tick_seconds,
                 daemon.config.grace, extra={"event": "serving", "owner": daemon.owner})
        await daemon.tick()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=daemon.config.housekeeping_seconds)
            except TimeoutError:
                sync_cron(scheduler, daemon)
    finally:
        log.info("stopping on signal", extra={"event": "stopping"})
        scheduler.shutdown(wait=False)
        await daemon.stop()
        if services is not None:
            services.stop()
        jobs.install(None)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
