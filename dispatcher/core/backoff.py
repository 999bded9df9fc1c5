"""When to try a deferred delivery again, and when to give up.

Exponential backoff with jitter, as bulk MTAs do it: the first retry after a
few minutes, the delay doubling each attempt up to a cap, a random spread so
thousands of deferrals from one 421 do not all come back in the same second,
and a maximum age (default 3 days; RFC 5321 §4.5.4.1 suggests 4-5) after
which a delivery fails as a soft bounce.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    first: timedelta = timedelta(minutes=5)
    factor: float = 2.0
    cap: timedelta = timedelta(hours=4)
    max_age: timedelta = timedelta(days=3)
    jitter: float = 0.2  # +-20% of the delay

    def __post_init__(self) -> None:
        if self.first <= timedelta(0) or self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("retry policy: first > 0, factor >= 1, 0 <= jitter < 1")

    def delay(self, attempts: int, rng: random.Random | None = None) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 = the first one failed)."""
        exponent = max(attempts - 1, 0)
        # Cap the exponent before computing, so a huge attempt count cannot overflow.
        seconds = self.first.total_seconds() * self.factor ** min(exponent, 64)
        seconds = min(seconds, self.cap.total_seconds())
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return timedelta(seconds=seconds * (1 + spread))

    def next_attempt(self, *, first_attempt_at: datetime | None, now: datetime, attempts: int,
                     rng: random.Random | None = None,
                     not_before: datetime | None = None) -> datetime | None:
        """When to try again, or None when the delivery is older than ``max_age``.

        ``not_before`` lets a receiver's own "come back in an hour" (or a suspended
        destination) push the retry later than the backoff would.
        """
        started = first_attempt_at or now
        if now - started >= self.max_age:
            return None
        at = now + self.delay(attempts, rng)
        if not_before is not None and not_before > at:
            at = not_before
        # The last retry happens at the deadline rather than never.
        return min(at, started + self.max_age)
