"""Recurring schedules' fire times across DST changes, as APScheduler and the daemon walk them.

APScheduler 3.11.3 answers the same fire time for ever after the second 02:30
of a fall-back night (agronholm/apscheduler#1021); every walk here runs under
a time limit, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.scheduler.cron import WallClockCronTrigger, cron_trigger, last_run

T = TypeVar("T")


def finishes(call: Callable[[], T], seconds: float = 5) -> T:
    """``call()``, failing the test if it has not returned within ``seconds``.

    A stuck call keeps its (daemon) thread busy, but the test reports it.
    """
    outcome: Future[T] = Future()

    def work() -> None:
        try:
            outcome.set_result(call())
        except BaseException as exc:
            outcome.set_exception(exc)

    threading.Thread(target=work, daemon=True).start()
    try:
        return outcome.result(timeout=seconds)
    except TimeoutError:
        pytest.fail(f"still running after {seconds} s: a walk over fire times did not advance")


def walk(trigger: WallClockCronTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Fire times from ``start`` to ``end`` in UTC, each asked for as APScheduler's
    ``Job._get_run_times`` does: the next after the previous one, ``now`` a second on."""
    found: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        found.append(fire.astimezone(UTC))
        later = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        # Stop at once rather than let a stuck walk fill memory until the time limit.
        # In UTC: within one zone, times compare by wall clock (the two 02:30s equal).
        assert later is None or later.astimezone(UTC) > fire.astimezone(UTC), \
            f"{later} came after {fire}"
        fire = later
    return found


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("expression", "zone", "day", "runs"), [
    # Berlin goes back from 03:00 CEST to 02:00 CET on 2026-10-25: 02:30 once, in CEST.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25),
     [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
    # New York goes back from 02:00 EDT to 01:00 EST on 2026-11-01: 01:30 once, in EDT.
    ("30 1 * * *", "America/New_York", utc(2026, 11, 1),
     [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]),
    # Berlin jumps from 02:00 CET to 03:00 CEST on 2026-03-29: 02:30 runs at 03:30 CEST.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29),
     [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]),
    # New York jumps from 02:00 EST to 03:00 EDT on 2026-03-08: 02:30 runs at 03:30 EDT.
    ("30 2 * * *", "America/New_York", utc(2026, 3, 8),
     [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]),
])
def test_a_run_on_a_dst_night_fires_once(expression: str, zone: str, day: datetime,
                                         runs: list[datetime]) -> None:
    trigger = cron_trigger(expression, zone)
    assert finishes(lambda: walk(trigger, day - timedelta(days=1),
                                 day + timedelta(days=1, hours=12))) == runs


def test_every_quarter_of_a_repeated_hour_runs_in_its_first_pass_only() -> None:
    trigger = cron_trigger("*/15 2 * * *", "Europe/Berlin")
    night = finishes(lambda: walk(trigger, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12)))
    assert night == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 15),
                     utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 0, 45)]


def test_a_skipped_run_moved_onto_another_is_one_run() -> None:
    # 02:00 and 02:30 do not exist on 2026-03-29 in Berlin; moved by the hour's gap
    # they are 03:00 and 03:30 CEST, which the line names too.
    trigger = cron_trigger("0,30 2,3 * * *", "Europe/Berlin")
    night = finishes(lambda: walk(trigger, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12)))
    assert night == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)]
    assert [run.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for run in night] == [
        "03:00", "03:30"]


@pytest.mark.parametrize(("expression", "zone", "now", "within", "expected"), [
    # The reviewer's case: asked after the repeated hour, with it all inside `within`.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 2), timedelta(hours=3),
     utc(2026, 10, 25, 0, 30)),
    # Asked at the second 02:30 (01:30 UTC): the run is still the first one.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 30), timedelta(hours=1, minutes=1),
     utc(2026, 10, 25, 0, 30)),
    ("30 1 * * *", "America/New_York", utc(2026, 11, 1, 7), timedelta(hours=3),
     utc(2026, 11, 1, 5, 30)),
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 29, 2), timedelta(hours=3),
     utc(2026, 3, 29, 1, 30)),
    ("30 2 * * *", "America/New_York", utc(2026, 3, 8, 8), timedelta(hours=3),
     utc(2026, 3, 8, 7, 30)),
    # The first pass is more than `within` back: nothing ran in the window.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 45), timedelta(hours=1),
     None),
])
def test_last_run_on_a_dst_night(expression: str, zone: str, now: datetime,
                                 within: timedelta, expected: datetime | None) -> None:
    trigger = cron_trigger(expression, zone)
    found = finishes(lambda: last_run(trigger, now, within=within))
    # In UTC: `==` between zones is False for a time in a repeated hour (PEP 495).
    assert (found and found.astimezone(UTC)) == expected


def test_last_run_asked_in_the_schedules_zone_during_the_repeated_hour() -> None:
    # 02:20 CET (01:20 UTC): within one zone the first 02:30 (CEST) reads as later
    # than now on the wall clock, though it was 50 minutes ago.
    berlin = ZoneInfo("Europe/Berlin")
    trigger = cron_trigger("30 2 * * *", "Europe/Berlin")
    now = datetime(2026, 10, 25, 2, 20, fold=1, tzinfo=berlin)
    found = finishes(lambda: last_run(trigger, now, within=timedelta(hours=1)))
    assert found is not None and found.astimezone(UTC) == utc(2026, 10, 25, 0, 30)


def test_a_first_fire_time_asked_for_in_the_repeated_hour_is_the_next_day() -> None:
    # A job added (or a daemon started) at 02:10 CET, after 02:30 CEST already ran.
    trigger = cron_trigger("30 2 * * *", "Europe/Berlin")
    first = finishes(lambda: trigger.get_next_fire_time(None, utc(2026, 10, 25, 1, 10)))
    assert first == utc(2026, 10, 26, 1, 30)


def test_a_first_fire_time_asked_for_just_after_the_jump_is_the_moved_run() -> None:
    # At 03:10 CEST the moved 02:30 (03:30 CEST) has not run yet.
    trigger = cron_trigger("30 2 * * *", "Europe/Berlin")
    first = finishes(lambda: trigger.get_next_fire_time(None, utc(2026, 3, 29, 1, 10)))
    assert first == utc(2026, 3, 29, 1, 30)


def test_fire_times_are_in_the_schedules_zone() -> None:
    trigger = cron_trigger("30 2 * * *", "Europe/Berlin")
    fire = trigger.get_next_fire_time(None, utc(2026, 3, 29))
    assert fire is not None and fire.tzinfo == ZoneInfo("Europe/Berlin")
    assert fire.isoformat() == "2026-03-29T03:30:00+02:00"


def test_the_trigger_survives_the_job_store() -> None:
    trigger = cron_trigger("30 2 * * *", "Europe/Berlin")
    stored = pickle.loads(pickle.dumps(trigger))
    assert type(stored) is WallClockCronTrigger and str(stored) == str(trigger)
    assert finishes(lambda: walk(stored, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))) == [
        utc(2026, 10, 25, 0, 30)]


EXPRESSIONS = ["30 2 * * *", "*/15 * * * *", "0,30 1-3 * * *", "45 2 * * sun", "0 0 * * *",
               "*/7 2 * * *"]
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo",
         "Pacific/Chatham", "UTC"]
days = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                    timezones=st.just(UTC))


@settings(max_examples=150, deadline=None)
@given(start=days, expression=st.sampled_from(EXPRESSIONS), name=st.sampled_from(ZONES))
def test_fire_times_advance_and_no_wall_time_runs_twice(start: datetime, expression: str,
                                                       name: str) -> None:
    trigger = cron_trigger(expression, name)
    runs = finishes(lambda: walk(trigger, start, start + timedelta(days=2)))
    assert runs == sorted(set(runs))
    # The daemon names each run after its local wall time: one campaign per name.
    names = [run.astimezone(ZoneInfo(name)).strftime("%Y%m%d-%H%M") for run in runs]
    assert len(names) == len(set(names))
