"""The relay pool: which relay carries the next message, at what pace, and when one is down.

Relays have a ``priority`` (lower first) and a ``weight`` (share among equals).
A message goes to the usable relay of best priority whose sent count per
weight is lowest; a relay that cannot be reached is taken out for a cool-down
that doubles while it stays down (failover); one whose quota is used up is
out until its window ends; and when the preferred relays are at their rate
limit with work waiting, the next priority takes the excess (spill-over).

Pacing and quotas are held in the store (:mod:`dispatcher.delivery.limits`)
so they hold across workers and restarts; a relay without limits costs no
store access at all.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dispatcher.core.rates import Limits, window_end
from dispatcher.delivery.limits import SharedLimits
from dispatcher.smtp.relay import RelayURL

_THROTTLE_REFRESH = 2.0
# A tier whose rate limits need this many seconds for the work waiting is at its limit.
_BEHIND = 0.5


@dataclass
class Relay:
    url: RelayURL
    limits: Limits
    connections: int
    per_connection: int
    key: str = ""
    tls_required: bool = False
    down_until: float = 0.0
    down_for: float = 0.0
    limited_until: float = 0.0
    sent: int = 0
    taken: int = 0
    last_error: str = ""
    open_connections: int = 0  # sessions holding a connected client, for the dashboard
    _slots: deque[float] = field(default_factory=deque)
    _quota: int = 0
    _factor: float = 1.0
    _factor_at: float = -math.inf
    _suspended_until: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _windows: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.key = self.key or f"relay:{self.url.display}"
        self._windows = self.limits.windows

    @property
    def name(self) -> str:
        return self.url.display

    def health(self, now: float) -> str:
        """What the dashboard shows: ``down`` while failed over, ``degraded`` at its quota."""
        if now < self.down_until:
            return "down"
        return "degraded" if now < self.limited_until else "ok"

    @property
    def paced(self) -> bool:
        """Messages wait for send slots (a per-second limit)."""
        return self.limits.per_second is not None

    def usable(self, now: float) -> bool:
        return now >= self.down_until and now >= self.limited_until

    def failed(self, now: float, error: str) -> None:
        """The relay could not be reached: out for 5 s, doubling up to 5 min while it stays down."""
        self.down_for = min(max(self.down_for * 2, 5.0), 300.0)
        self.down_until = now + self.down_for
        self.last_error = error

    def worked(self) -> None:
        self.down_for = 0.0
        self.sent += 1

    async def pace(self, shared: SharedLimits) -> float | None:
        """Wait for this relay's next send slot; None when a quota is used up (try another)."""
        windows = self._windows
        if not windows and self.limits.per_second is None:
            return 0.0
        async with self._lock:
            if windows and self._quota <= 0:
                chunk = max(1, min(50, self.connections * 4))
                self._quota = await asyncio.to_thread(shared.take, self.key, windows, chunk)
                if self._quota <= 0:
                    now = datetime.now(UTC)
                    ends = [window_end(now, w) for w in windows]
                    self.limited_until = time.monotonic() + min(
                        (e - now).total_seconds() for e in ends)
                    return None
            if windows:
                self._quota -= 1
            if self.limits.per_second is None:
                return 0.0
            slot = await self._next_slot(shared)
        wait = slot - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        return max(wait, 0.0)

    async def _next_slot(self, shared: SharedLimits) -> float:
        rate = self.limits.per_second
        assert rate is not None
        now = time.time()
        if now - self._factor_at > _THROTTLE_REFRESH:
            throttle = await asyncio.to_thread(shared.throttle, self.key)
            self._factor, self._suspended_until = throttle.current(now), throttle.suspended_until
            self._factor_at = now
        if not self._slots:
            effective = rate * self._factor
            # Reserve ~0.2 s of slots at a time: few store round trips, workers interleave finely.
            count = max(1, min(50, math.ceil(effective * 0.2)))
            reservation = await asyncio.to_thread(shared.reserve, self.key, effective, count)
            self._slots.extend(reservation.slot(i) for i in range(count))
        return max(self._slots.popleft(), self._suspended_until)

    async def give_back(self, shared: SharedLimits) -> None:
        """At the end of a run: the unused part of the quota chunk goes back to the store."""
        async with self._lock:
            left, self._quota = self._quota, 0
        if left > 0:
            await asyncio.to_thread(shared.give_back, self.key, self._windows, left)

    async def slow_down(self, shared: SharedLimits, hint: str, suspend: float = 60.0) -> None:
        """The relay said "too many" / 421 4.7.x: every worker halves its rate for a while."""
        throttle = await asyncio.to_thread(shared.slow_down, self.key, suspend, hint=hint)
        self._factor, self._factor_at = throttle.current(time.time()), time.time()
        self._suspended_until = throttle.suspended_until
        self._slots.clear()


class RelayPool:
    def __init__(self, relays: list[Relay]) -> None:
        if not relays:
            raise ValueError("a relay pool needs at least one relay")
        self.relays = relays

    def eligible(self, relay: Relay, now: float, waiting: int) -> bool:
        """May ``relay`` take the next message? Priority first, weight within a priority."""
        if not relay.usable(now):
            return False
        if len(self.relays) == 1:
            return True
        usable = [r for r in self.relays if r.usable(now)]
        for priority in sorted({r.url.priority for r in usable}):
            tier = [r for r in usable if r.url.priority == priority]
            if relay in tier:
                # Within a tier, shares follow the weights (slack: one round of connections).
                low = min(r.taken / r.url.weight for r in tier)
                return relay.taken / relay.url.weight <= low + relay.connections
            rates = [r.limits.per_second for r in tier]
            saturated = all(rates) and waiting / sum(x or 0.0 for x in rates) > _BEHIND
            if not saturated:
                return False  # a preferred tier is usable and not at its rate: no spill-over
        return False

    def any_usable(self, now: float) -> bool:
        return any(r.usable(now) for r in self.relays)

    def next_ready(self, now: float) -> float:
        """Seconds until some relay is usable again."""
        return max(0.0, min(max(r.down_until, r.limited_until) for r in self.relays) - now)
