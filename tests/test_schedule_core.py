"""Schedule arithmetic: parsing, local-time rollout, windows, warm-up, grace, across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.core.schedule import (
    ScheduleError,
    SendWindow,
    local_send_time,
    parse_at,
    parse_days,
    start_decision,
    wall,
    warmup_cap,
    zone,
)

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe",
         "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham", "UTC"]
# 2026 around both DST changes in Europe and the US, plus quiet weeks.
instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC))
clocks = st.times().map(lambda t: t.replace(second=0, microsecond=0))


def test_parse_at_forms() -> None:
    assert parse_at("2026-12-01T09:00 Europe/Berlin") == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert parse_at("2026-07-01T09:00 Europe/Berlin") == datetime(2026, 7, 1, 7, tzinfo=UTC)
    assert parse_at("2026-12-01T09:00[America/New_York]") == datetime(2026, 12, 1, 14,
                                                                      tzinfo=UTC)
    assert parse_at("2026-12-01T09:00+01:00") == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert parse_at("2026-12-01T09:00Z") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert parse_at("2026-12-01 09:00", default_zone="Asia/Tokyo") == datetime(
        2026, 12, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["tomorrow", "2026-13-01T09:00", "2026-12-01T09:00 Mars/Base",
                                 "2026-12-01T09:00+01:00 Europe/Berlin"])
def test_parse_at_refuses_with_a_message(bad: str) -> None:
    with pytest.raises(ScheduleError):
        parse_at(bad)


@pytest.mark.parametrize(("text", "default_zone"), [
    ("0001-01-01T00:00+01:00", "UTC"),
    ("9999-12-31T23:59-00:01", "UTC"),
    ("9999-12-31T23:30 America/New_York", "UTC"),
    ("0001-01-01T00:30[Europe/Berlin]", "UTC"),
    ("0001-01-01 00:00", "Asia/Tokyo"),
])
def test_parse_at_refuses_a_time_past_the_calendar_edge(text: str, default_zone: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        parse_at(text, default_zone=default_zone)
    assert str(refused.value).startswith(f"{text!r} is out of range")


def test_parse_at_accepts_the_calendar_edge_itself() -> None:
    assert parse_at("0001-01-01T00:00Z") == datetime.min.replace(tzinfo=UTC)
    assert parse_at("9999-12-31T23:59 UTC") == datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert parse_at("0001-01-01T00:00-05:00") == datetime(1, 1, 1, 5, tzinfo=UTC)
    assert parse_at("9999-12-31T23:30 Asia/Tokyo") == datetime(9999, 12, 31, 14, 30,
                                                               tzinfo=UTC)


@pytest.mark.parametrize(("text", "default_zone", "shown"), [
    ("2026-03-29T02:30 Europe/Berlin", "UTC", "2026-03-29 02:30 does not exist in "
     "Europe/Berlin"),
    ("2026-03-29T02:00[Europe/Berlin]", "UTC", "2026-03-29 02:00 does not exist in "
     "Europe/Berlin"),
    ("2026-03-08 02:15", "America/New_York", "2026-03-08 02:15 does not exist in "
     "America/New_York"),
    ("2026-10-04T02:15 Australia/Lord_Howe", "UTC", "2026-10-04 02:15 does not exist in "
     "Australia/Lord_Howe"),
])
def test_parse_at_refuses_a_time_the_clocks_jump_over(text: str, default_zone: str,
                                                      shown: str) -> None:
    with pytest.raises(ScheduleError) as refused:
        parse_at(text, default_zone=default_zone)
    assert str(refused.value).startswith(f"{shown}: the clocks jump forward then")


def test_parse_at_reads_a_repeated_time_as_its_first_occurrence() -> None:
    # 02:30 happens twice in Berlin on 2026-10-25: first in CEST (00:30 UTC), then in CET.
    assert parse_at("2026-10-25T02:30 Europe/Berlin") == datetime(2026, 10, 25, 0, 30,
                                                                  tzinfo=UTC)
    assert parse_at("2026-11-01 01:30", default_zone="America/New_York") == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC)


def test_parse_at_around_a_gap_is_unchanged() -> None:
    # The last minute before Berlin's jump and the first after it both exist.
    assert parse_at("2026-03-29T01:59 Europe/Berlin") == datetime(2026, 3, 29, 0, 59,
                                                                  tzinfo=UTC)
    assert parse_at("2026-03-29T03:00 Europe/Berlin") == datetime(2026, 3, 29, 1, tzinfo=UTC)
    # An offset or UTC names the instant itself: there is no wall time to skip.
    assert parse_at("2026-03-29T02:30+01:00") == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert parse_at("2026-03-29T02:30 UTC") == datetime(2026, 3, 29, 2, 30, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(start=instants, name=st.sampled_from(ZONES))
def test_parse_at_reads_back_every_wall_time_that_exists(start: datetime, name: str) -> None:
    local = start.astimezone(zone(name)).replace(second=0, microsecond=0, tzinfo=None)
    at = parse_at(f"{local:%Y-%m-%dT%H:%M} {name}")
    assert at.astimezone(zone(name)).replace(tzinfo=None) == local


def test_wall_times_in_dst_gaps_move_forward_and_repeats_take_the_first() -> None:
    berlin = zone("Europe/Berlin")
    # 2026-03-29 02:30 does not exist in Berlin: it becomes 03:30 CEST = 01:30 UTC.
    assert wall(date(2026, 3, 29), time(2, 30), berlin) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # 2026-10-25 02:30 happens twice: the first (CEST) one.
    assert wall(date(2026, 10, 25), time(2, 30), berlin) == datetime(2026, 10, 25, 0, 30,
                                                                     tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(start=instants, clock=clocks, name=st.sampled_from(ZONES),
       grace_min=st.integers(0, 180))
def test_local_send_time_is_the_next_wall_time_or_within_grace(
        start: datetime, clock: time, name: str, grace_min: int) -> None:
    tz = ZoneInfo(name) if name != "UTC" else UTC
    grace = timedelta(minutes=grace_min)
    at = local_send_time(clock, tz, start, grace=grace)
    assert at >= start
    # Never more than a day (plus a DST hour, plus Lord Howe's half hour) away.
    assert at - start <= timedelta(hours=25, minutes=30)
    local = at.astimezone(tz)
    if at > start:
        # Sent at the wall time itself, unless a DST gap swallowed it (then just after).
        exact = local.time().replace(tzinfo=None) == clock
        shifted = wall(local.date(), clock, tz) == at
        assert exact or shifted
        # No earlier occurrence of that wall time was within reach of the start.
        for days in (1, 2):
            earlier = wall(local.date() - timedelta(days=days), clock, tz)
            assert earlier < start - grace or earlier >= at
    else:
        # Started at or just after today's time: sent at once, if within the grace.
        previous = [wall(start.astimezone(tz).date() + timedelta(days=d), clock, tz)
                    for d in (-1, 0)]
        assert any(start - grace <= p <= start for p in previous)


def test_local_time_reaches_tokyo_berlin_new_york_at_their_nine() -> None:
    start = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    nine = time(9, 0)
    assert local_send_time(nine, zone("Asia/Tokyo"), start) == start
    assert local_send_time(nine, zone("Europe/Berlin"), start) == datetime(2026, 12, 1, 8,
                                                                           tzinfo=UTC)
    assert local_send_time(nine, zone("America/New_York"), start) == datetime(2026, 12, 1, 14,
                                                                              tzinfo=UTC)
    # Berlin's 9:00 passed 20 minutes ago: within the hour's grace it goes now, not tomorrow.
    late = datetime(2026, 12, 1, 8, 20, tzinfo=UTC)
    assert local_send_time(nine, zone("Europe/Berlin"), late) == late
    assert local_send_time(nine, zone("Europe/Berlin"), late, grace=timedelta(0)) == datetime(
        2026, 12, 2, 8, tzinfo=UTC)


def test_days_parse() -> None:
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days(["sat", "sun"]) == frozenset({5, 6})
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days("Monday,wed") == frozenset({0, 2})
    with pytest.raises(ScheduleError):
        parse_days("funday")


@pytest.mark.parametrize("hours", ["8-18", "08:00-08:00", "25:00-26:00", "24:00-08:00"])
def test_bad_hours_refused(hours: str) -> None:
    with pytest.raises(ScheduleError):
        SendWindow.parse("mon-fri", hours)


def test_business_hours_window() -> None:
    w = SendWindow.parse("mon-fri", "08:00-18:00")
    berlin = zone("Europe/Berlin")
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert not w.is_open(saturday, berlin)
    assert w.next_open(saturday, berlin) == datetime(2026, 11, 30, 7, tzinfo=UTC)
    monday = datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert w.is_open(monday, berlin)
    assert w.closes_after(monday, berlin) == datetime(2026, 11, 30, 17, tzinfo=UTC)
    evening = datetime(2026, 11, 30, 17, tzinfo=UTC)  # 18:00 Berlin: closed (end exclusive)
    assert w.next_open(evening, berlin) == datetime(2026, 12, 1, 7, tzinfo=UTC)


def test_overnight_window_belongs_to_the_day_it_opens() -> None:
    w = SendWindow.parse("fri", "22:00-06:00")
    # Saturday 03:00 UTC is inside Friday night's window.
    assert w.is_open(datetime(2026, 11, 28, 3, tzinfo=UTC), UTC)
    assert not w.is_open(datetime(2026, 11, 28, 23, tzinfo=UTC), UTC)


@settings(max_examples=200, deadline=None)
@given(now=instants, name=st.sampled_from(ZONES),
       days=st.sets(st.integers(0, 6), min_size=1),
       opens=st.integers(0, 23 * 4 + 3), length=st.integers(1, 24 * 4 - 1))
def test_next_open_is_open_and_nothing_earlier_is(now: datetime, name: str, days: set[int],
                                                  opens: int, length: int) -> None:
    tz = ZoneInfo(name) if name != "UTC" else UTC
    start = time(opens // 4, opens % 4 * 15)
    end_q = opens + length
    end = "24:00" if end_q == 96 else f"{end_q % 96 // 4:02d}:{end_q % 4 * 15:02d}"
    w = SendWindow.parse([["mon", "tue", "wed", "thu", "fri", "sat", "sun"][d] for d in days],
                         f"{start:%H:%M}-{end}")
    nxt = w.next_open(now, tz)
    assert nxt >= now
    assert w.is_open(nxt, tz)
    assert nxt - now <= timedelta(days=8)
    if nxt > now:
        # Closed all the way from now to the opening (checked every 15 minutes).
        probe = now
        while probe < nxt - timedelta(minutes=1):
            assert not w.is_open(probe, tz)
            probe += timedelta(minutes=15)
        assert not w.is_open(nxt - timedelta(seconds=1), tz)


def test_warmup_doubles_to_the_ceiling() -> None:
    assert [warmup_cap(500, 2, 10_000, d) for d in range(-1, 8)] == [
        500, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]


@given(first=st.integers(1, 10_000), factor=st.floats(1, 4), ceiling=st.integers(1, 10**7),
       day=st.integers(0, 400))
def test_warmup_cap_grows_and_never_passes_the_ceiling(first: int, factor: float,
                                                       ceiling: int, day: int) -> None:
    cap = warmup_cap(first, factor, ceiling, day)
    assert 1 <= cap <= max(ceiling, 1)
    assert warmup_cap(first, factor, ceiling, day + 1) >= cap


def test_grace_decisions() -> None:
    due = datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert start_decision(due, due - timedelta(seconds=1)) == "wait"
    assert start_decision(due, due) == "start"
    assert start_decision(due, due + timedelta(minutes=59)) == "start"
    assert start_decision(due, due + timedelta(minutes=61)) == "missed"


def test_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ScheduleError, match="Mars/Base"):
        zone("Mars/Base")
