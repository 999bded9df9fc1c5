"""Recurring schedules: crontab lines read by APScheduler's ``CronTrigger`` in a zone.

A crontab line names wall-clock times; where the clocks change, they become
instants as everywhere in :mod:`dispatcher.core.schedule` (``fold=0``):

* A wall time the clocks skip (02:30 on a spring-forward night in Berlin or New
  York) runs once, moved forward by the size of the gap: at 03:30 summer time.
  (cronie runs it at 03:00, as the jump happens.) A line that also names the
  moved time (``30 2,3 * * *``) runs once then, not twice.
* A wall time the clocks repeat (02:30 on Berlin's fall-back night, 01:30 in
  New York) runs once, at its first occurrence (summer time). cronie does the
  same for fixed times but runs lines with ``*`` in the hour or minute again
  in the repeated hour; here no line does. A run's campaign is named after its
  local wall time, so a second 02:30 would be the same campaign anyway, and a
  newsletter sent twice is worse than an hour without one.

APScheduler 3.11.3 gets the repeated hour wrong (agronholm/apscheduler#1021):
after the second 02:30 it answers the same 02:30 for ever, so its scheduler
(``Job._get_run_times``) and :func:`last_run` would loop without end and freeze
the event loop. :class:`WallClockCronTrigger` does the calendar search in plain
wall-clock time, where APScheduler is right, and maps the result itself.
"""

from __future__ import annotations

from copy import copy
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from dispatcher.core.schedule import ScheduleError, zone


# Job stores pickle the trigger by its import path: renaming this class or
# moving it strands the recurring jobs already stored.
class WallClockCronTrigger(CronTrigger):  # type: ignore[misc]
    """A ``CronTrigger`` whose fire times are always later than the previous one.

    Skipped wall times move forward by the gap, repeated ones fire at their
    first occurrence only (see the module's docstring).
    """

    __slots__ = ()

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        earliest = (now if previous_fire_time is None
                    else previous_fire_time + timedelta(microseconds=1)).astimezone(UTC)
        tz = self.timezone
        # A skipped wall time fires later than its wall time reads (02:30 at 03:30),
        # so the search starts from the earlier of ``earliest``'s wall time and the
        # one it had with the offset of a day before (aware + timedelta moves the
        # wall clock); else a run moved past that day's jump would be passed over.
        before_jump = (earliest - timedelta(days=1)).astimezone(tz) + timedelta(days=1)
        start = min(earliest.astimezone(tz).replace(tzinfo=None),
                    before_jump.replace(tzinfo=None))
        # In UTC nothing is skipped or repeated, so this twin finds the next
        # matching wall time (read as UTC) without APScheduler's DST bug.
        twin = copy(self)
        twin.timezone = UTC
        probe = start.replace(tzinfo=UTC)
        while True:
            found: datetime | None = CronTrigger.get_next_fire_time(twin, None, probe)
            if found is None:
                return None
            instant = found.replace(tzinfo=tz, fold=0).astimezone(UTC)
            if instant >= earliest:
                return instant.astimezone(tz)
            probe = found + timedelta(seconds=1)


def cron_trigger(expression: str, timezone: str) -> WallClockCronTrigger:
    """The trigger for a five-field crontab line in ``timezone``."""
    try:
        trigger: WallClockCronTrigger = WallClockCronTrigger.from_crontab(
            expression, timezone=zone(timezone))
    except ValueError as exc:
        raise ScheduleError(f"cron {expression!r}: {exc}") from None
    return trigger


def last_run(trigger: WallClockCronTrigger, now: datetime, *,
             within: timedelta) -> datetime | None:
    """The latest run time at or before ``now`` and no more than ``within`` before it.

    A job function is not told which run it is; this finds it, so a run started
    late (after a restart, within the grace) is still named after its own time.
    """
    found: datetime | None = None
    # Compared in UTC: two times in one zone compare by wall clock, fold ignored,
    # so the second 02:30 of a fall-back night would not be later than the first.
    until = now.astimezone(UTC)
    probe = trigger.get_next_fire_time(None, until - within)
    while probe is not None and probe.astimezone(UTC) <= until:
        found = probe
        probe = trigger.get_next_fire_time(probe, now)
    return found
