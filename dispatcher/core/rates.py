"""Rate arithmetic: smooth per-second pacing, counted windows, adaptive backoff.

Three pieces, all pure (times are floats of seconds or aware datetimes given
by the caller), so the same rules run in one process or are applied to state
shared in the store by many workers:

* :func:`reserve` is GCRA (the generic cell rate algorithm, a token bucket
  written as one "theoretical arrival time"): reserving ``n`` slots moves the
  time forward by ``n / rate``; each slot's time is when that message may go.
  One number per key, so workers share a limit with a single atomic update.
* :class:`Limits` and :func:`window_start` count messages per minute, hour and
  day (quotas that must survive restarts: a provider's daily cap).
* :class:`Throttle` lowers a destination's rate when it says "slow down"
  (421, 4.7.x, "try again later", "too many", Yahoo's ``[TS04]``), suspends it
  for a while, and lets the rate recover gradually afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOWS = {"m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Reservation:
    start: float  # when the first reserved slot may be used
    interval: float  # seconds between slots
    count: int
    tat: float  # the key's new theoretical arrival time

    def slot(self, index: int) -> float:
        return self.start + index * self.interval


def reserve(tat: float | None, now: float, rate: float, count: int, *,
            burst: float = 0.0) -> Reservation:
    """Reserve ``count`` slots at ``rate``/s after the key's current ``tat``.

    ``burst`` seconds of credit are allowed: a key idle for a while may start
    up to ``burst`` seconds "in the past", so a short burst goes out at once.
    """
    if rate <= 0 or count < 0:
        raise ValueError("rate must be > 0 and count >= 0")
    interval = 1.0 / rate
    start = max(tat if tat is not None else now - burst, now - burst)
    return Reservation(start, interval, count, start + count * interval)


@dataclass(frozen=True)
class Limits:
    """Messages per second (paced), and per minute/hour/day (counted windows)."""

    per_second: float | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None

    def __post_init__(self) -> None:
        for name in ("per_second", "per_minute", "per_hour", "per_day"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0")

    @property
    def windows(self) -> dict[str, int]:
        """``{"m": 600, "d": 5000}``: the counted windows that are limited."""
        out = {"m": self.per_minute, "h": self.per_hour, "d": self.per_day}
        return {k: int(v) for k, v in out.items() if v is not None}

    def stricter(self, other: Limits) -> Limits:
        """Each limit the smaller of the two (a campaign can only lower a relay's limits)."""
        def low(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)
        second = (other.per_second if self.per_second is None else self.per_second
                  if other.per_second is None else min(self.per_second, other.per_second))
        return Limits(second, low(self.per_minute, other.per_minute),
                      low(self.per_hour, other.per_hour), low(self.per_day, other.per_day))

    @property
    def unlimited(self) -> bool:
        return self.per_second is None and not self.windows


def window_start(now: datetime, window: str) -> datetime:
    """The start of the UTC-aligned window (minute, hour, day) containing ``now``."""
    if window == "m":
        return now.replace(second=0, microsecond=0)
    if window == "h":
        return now.replace(minute=0, second=0, microsecond=0)
    if window == "d":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown window {window!r}")


def window_end(now: datetime, window: str) -> datetime:
    return window_start(now, window) + timedelta(seconds=WINDOWS[window])


def grantable(counts: dict[str, int], limits: dict[str, int], wanted: int) -> int:
    """How many of ``wanted`` the counted windows still allow."""
    room = [limits[w] - counts.get(w, 0) for w in limits]
    return max(0, min([wanted, *room]))


# What a receiver says when it wants us to slow down (as opposed to "this recipient is bad").
_THROTTLE_TEXT = re.compile(
    r"try again later|too many|rate limit|ratelimit|throttl|slow down|temporarily deferred|"
    r"\[TS0\d\]|exceeded|unusual rate|too fast", re.I)


def is_throttle(code: int | None, text: str, status: str | None = None) -> bool:
    """True for a 421 or a 4xx whose enhanced status (4.7.x) or words signal rate limiting."""
    if code is None or not 400 <= code < 500:
        return False
    if code == 421 or (status or "").startswith("4.7."):
        return True
    return bool(_THROTTLE_TEXT.search(text))


@dataclass(frozen=True)
class Throttle:
    """A destination's adaptive rate: ``factor`` of its configured rate, recovering over time."""

    factor: float = 1.0
    throttled_at: float | None = None
    suspended_until: float = 0.0

    # Each slow-down halves the rate (down to 5%); full recovery takes ``recovery`` seconds.
    floor: float = 0.05
    recovery: float = 600.0

    def current(self, now: float) -> float:
        """The factor now: back toward 1.0 linearly since the last throttle."""
        if self.throttled_at is None:
            return self.factor
        healed = (now - self.throttled_at) / self.recovery
        return min(1.0, self.factor + healed * (1.0 - self.factor))

    def slow_down(self, now: float, suspend: float, *, hint: str = "") -> Throttle:
        """After a throttle reply: halve the rate and suspend (Yahoo's [TS04]: for hours)."""
        if re.search(r"\[TS0[34]\]", hint):
            suspend = max(suspend, 3600.0 * (4 if "TS04" in hint else 1))
        return Throttle(max(self.floor, self.current(now) / 2), now,
                        max(self.suspended_until, now + suspend), self.floor, self.recovery)

    def suspended(self, now: float) -> bool:
        return now < self.suspended_until
