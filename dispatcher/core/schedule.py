"""Schedule arithmetic: start times, each recipient's local send instant, send windows, warm-up.

Pure functions of aware datetimes and IANA zones (``zoneinfo``); the daemon in
:mod:`dispatcher.scheduler` applies them to the store. Recurring wall-clock
times (windows, each recipient's local time) that a DST change skips (02:30 on
a spring-forward night) move forward by the size of the gap, and times that
happen twice (autumn) mean the first of the two: the behaviour of cron and of
``zoneinfo`` with ``fold=0``. A one-off time given to :func:`parse_at` that
does not exist is refused instead: someone typed it, and guessing what they
meant would send at a time nobody asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_GRACE = timedelta(hours=1)
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_HOURS = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)-([01]?\d|2[0-4]):([0-5]\d)$")
# "2026-12-01T09:00 Europe/Berlin": a wall-clock time and the zone it is read in.
_AT_WITH_ZONE = re.compile(r"^(\S+?)(?:\s+|\[)([A-Za-z][A-Za-z0-9_+\-/]*)\]?$")


class ScheduleError(ValueError):
    """A schedule value (time, zone, window, cron) cannot be used."""


def zone(name: str) -> tzinfo:
    """The IANA zone ``name`` (``UTC`` included); a clear error for an unknown one."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (use an IANA name like "
                            f"Europe/Berlin)") from None


def wall(day: date, at: time, tz: tzinfo) -> datetime:
    """The instant (UTC) of wall-clock ``at`` on ``day`` in ``tz``.

    ``fold=0`` reads a skipped time with the offset in force before the change,
    which lands after the gap (02:30 becomes 03:30), and a repeated time as its
    first occurrence.
    """
    return datetime.combine(day, at).replace(tzinfo=tz, fold=0).astimezone(UTC)


def parse_at(text: str, *, default_zone: str = "UTC") -> datetime:
    """An aware UTC instant from ``2026-12-01T09:00 Europe/Berlin`` (or ``...[Europe/Berlin]``),
    an ISO time with offset, or a naive ISO time read in ``default_zone``.

    A wall time the zone skips (the clocks jump forward over it) is a
    :class:`ScheduleError`, not quietly moved. A wall time the zone repeats (the
    clocks go back) is its first occurrence, ``fold=0``, as everywhere here.
    """
    value = text.strip()
    zone_name: str | None = None
    match = _AT_WITH_ZONE.match(value)
    if match and re.match(r"^[A-Za-z]", match.group(2)):
        value, zone_name = match.group(1), match.group(2)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"{text!r} is not a date-time; write 2026-12-01T09:00 Europe/Berlin "
                            f"or 2026-12-01T09:00+01:00") from None
    if parsed.tzinfo is not None:
        if zone_name is not None:
            raise ScheduleError(f"{text!r} gives both a UTC offset and a zone; give one")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise _out_of_range(text) from None
    name = zone_name or default_zone
    tz = zone(name)
    try:
        instant = wall(parsed.date(), parsed.time(), tz)
    except OverflowError:
        raise _out_of_range(text) from None
    # A skipped time comes back from UTC as a different wall time (02:30 as 03:30).
    moved = instant.astimezone(tz).replace(tzinfo=None)
    if moved != parsed:
        raise ScheduleError(f"{parsed:%Y-%m-%d %H:%M} does not exist in {name}: the clocks "
                            f"jump forward then; give a time outside the jump, e.g. "
                            f"{moved:%H:%M}")
    return instant


def _out_of_range(text: str) -> ScheduleError:
    # Near 0001-01-01 or 9999-12-31 the offset can carry the instant past what a
    # datetime holds.
    return ScheduleError(f"{text!r} is out of range: in UTC it falls before year 1 or "
                         f"after year 9999")


def parse_clock(text: str) -> time:
    match = _CLOCK.match(text.strip())
    if not match:
        raise ScheduleError(f"time of day {text!r} must look like 09:00")
    return time(int(match.group(1)), int(match.group(2)))


def local_send_time(clock: time, tz: tzinfo, start: datetime, *,
                    grace: timedelta = DEFAULT_GRACE) -> datetime:
    """When a recipient in ``tz`` gets a ``local_time`` send started at ``start``.

    Their next ``clock`` wall time at or after ``start``; one that passed less
    than ``grace`` ago counts as now (a campaign started at 09:10 still reaches
    Berlin this morning, not tomorrow).
    """
    today = start.astimezone(tz).date()
    for offset in (-1, 0, 1, 2):
        instant = wall(today + timedelta(days=offset), clock, tz)
        if instant >= start - grace:
            return max(instant, start)
    raise AssertionError("unreachable: a wall time recurs within two days")


@dataclass(frozen=True)
class SendWindow:
    """Days and hours in which sending is allowed; ``18:00-08:00`` runs overnight."""

    days: frozenset[int]  # 0 = Monday
    opens: time
    closes: time | None  # None: midnight at the end of the day

    @classmethod
    def parse(cls, days: list[str] | str, hours: str) -> SendWindow:
        match = _HOURS.match(hours.replace(" ", ""))
        if not match:
            raise ScheduleError(f"hours {hours!r} must look like 08:00-18:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 == 24 and m1 == 0:
            raise ScheduleError(f"hours {hours!r}: a window cannot open at 24:00")
        if (h1 == 24 and m1) or (h2 == 24 and m2):
            raise ScheduleError(f"hours {hours!r}: 24:00 is the latest time")
        opens = time(h1, m1)
        closes = None if h2 == 24 else time(h2, m2)
        if closes == opens:
            raise ScheduleError(f"hours {hours!r} open and close at the same time")
        return cls(parse_days(days), opens, closes)

    def _spans(self, day: date, tz: tzinfo) -> tuple[datetime, datetime]:
        start = wall(day, self.opens, tz)
        if self.closes is None:
            end = wall(day + timedelta(days=1), time(0), tz)
        elif self.closes > self.opens:
            end = wall(day, self.closes, tz)
        else:
            end = wall(day + timedelta(days=1), self.closes, tz)
        return start, end

    def is_open(self, now: datetime, tz: tzinfo) -> bool:
        return self.next_open(now, tz) == now

    def next_open(self, now: datetime, tz: tzinfo) -> datetime:
        """``now`` if the window is open, else the instant it next opens."""
        today = now.astimezone(tz).date()
        for offset in range(-1, 9):
            day = today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            start, end = self._spans(day, tz)
            if end <= now:
                continue
            return max(start, now)
        raise AssertionError("unreachable: a window with days opens within a week")

    def closes_after(self, now: datetime, tz: tzinfo) -> datetime | None:
        """When the window open at ``now`` closes (None if it is closed now)."""
        today = now.astimezone(tz).date()
        for offset in (-1, 0):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                start, end = self._spans(day, tz)
                if start <= now < end:
                    return end
        return None


def parse_days(value: list[str] | str) -> frozenset[int]:
    """``mon-fri``, ``[mon, wed, fri]``, ``sat,sun``, ``sat-mon`` (wraps)."""
    parts = value if isinstance(value, list) else [value]
    found: set[int] = set()
    for part in parts:
        for item in str(part).split(","):
            token = item.strip().lower()
            if not token:
                continue
            if "-" in token:
                first, last = (_day(t) for t in token.split("-", 1))
                span = (last - first) % 7
                found.update((first + i) % 7 for i in range(span + 1))
            else:
                found.add(_day(token))
    if not found:
        raise ScheduleError("a window needs at least one day")
    return frozenset(found)


def _day(token: str) -> int:
    key = token.strip().lower()[:3]
    if key not in DAYS:
        raise ScheduleError(f"unknown day {token!r} (use mon, tue, wed, thu, fri, sat, sun)")
    return DAYS.index(key)


def start_decision(scheduled: datetime, now: datetime, *,
                   grace: timedelta = DEFAULT_GRACE) -> Literal["wait", "start", "missed"]:
    """What to do with a schedule due at ``scheduled``: not yet, start now, or too late."""
    if now < scheduled:
        return "wait"
    return "start" if now - scheduled <= grace else "missed"


class WarmupConfig(BaseModel):
    """A daily cap that grows while a new sending domain (or relay) earns a reputation.

    Day 0 allows ``first_day`` messages, each following day ``factor`` times the
    one before, until ``ceiling``; after that the cap stays at the ceiling.
    ``keys`` maps each domain (or relay name) being warmed up to its first day.
    """

    model_config = ConfigDict(extra="forbid")

    per: Literal["domain", "relay"] = "domain"
    first_day: int = Field(default=500, ge=1)
    factor: float = Field(default=2.0, ge=1.0)
    ceiling: int = Field(default=1_000_000, ge=1)
    keys: dict[str, date] = Field(default_factory=dict)

    def cap(self, started: date, today: date) -> int:
        return warmup_cap(self.first_day, self.factor, self.ceiling, (today - started).days)


def warmup_cap(first_day: int, factor: float, ceiling: int, day_number: int) -> int:
    """The cap on warm-up day ``day_number`` (0-based; before the start, the first day's)."""
    day = max(day_number, 0)
    cap = float(first_day)
    for _ in range(day):
        cap *= factor
        if cap >= ceiling:
            return ceiling
    return min(int(cap), ceiling)


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day: warm-up days and counters are UTC days."""
    utc = now.astimezone(UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


class SchedulerConfig(BaseModel):
    """The daemon's settings (``[scheduler]`` in ``dispatcher.toml``)."""

    model_config = ConfigDict(extra="forbid")

    grace: timedelta = DEFAULT_GRACE
    default_timezone: str = "UTC"
    timezone_attribute: str = "timezone"
    tick_seconds: float = Field(default=1.0, gt=0)
    housekeeping_seconds: float = Field(default=30.0, gt=0)
    drain_seconds: float = Field(default=20.0, ge=0)
    warmup: WarmupConfig = Field(default_factory=WarmupConfig)

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value
