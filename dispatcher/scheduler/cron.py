"""Recurring schedules: crontab lines read by APScheduler's ``CronTrigger`` in a zone."""

from __future__ import annotations

from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from dispatcher.core.schedule import ScheduleError, zone


def cron_trigger(expression: str, timezone: str) -> CronTrigger:
    """APScheduler's trigger for a five-field crontab line in ``timezone``."""
    try:
        return CronTrigger.from_crontab(expression, timezone=zone(timezone))
    except ValueError as exc:
        raise ScheduleError(f"cron {expression!r}: {exc}") from None


def last_run(trigger: CronTrigger, now: datetime, *, within: timedelta) -> datetime | None:
    """The latest run time at or before ``now`` and no more than ``within`` before it.

    A job function is not told which run it is; this finds it, so a run started
    late (after a restart, within the grace) is still named after its own time.
    """
    found: datetime | None = None
    probe = trigger.get_next_fire_time(None, now - within)
    while probe is not None and probe <= now:
        found = probe
        probe = trigger.get_next_fire_time(probe, probe + timedelta(seconds=1))
    return found
