"""Limits held in the store: concurrent takers never exceed a quota; pacing slots interleave."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from dispatcher.delivery.limits import SharedLimits
from dispatcher.store import Store


def test_concurrent_quota_takers_get_exactly_the_quota(store: Store) -> None:
    limits = SharedLimits(store)
    with ThreadPoolExecutor(8) as pool:
        granted = list(pool.map(lambda _: limits.take("relay:x", {"m": 50, "d": 60}, 7),
                                range(12)))
    assert sum(granted) == 50 and all(0 <= g <= 7 for g in granted)
    assert limits.used("relay:x", "m") == 50 and limits.used("relay:x", "d") == 50
    limits.give_back("relay:x", {"m": 50, "d": 60}, 5)
    assert limits.take("relay:x", {"m": 50, "d": 60}, 9) == 5
    assert limits.take("relay:x", {"m": 50, "d": 60}, 1) == 0


def test_reservations_from_many_workers_never_overlap(store: Store) -> None:
    clock = [1000.0]
    limits = SharedLimits(store, clock=lambda: clock[0])
    with ThreadPoolExecutor(6) as pool:
        runs = list(pool.map(lambda _: limits.reserve("relay:y", 10.0, 5), range(6)))
    slots = sorted(r.slot(i) for r in runs for i in range(r.count))
    assert slots == pytest.approx([1000.0 + k / 10 for k in range(30)])


def test_throttle_is_shared(store: Store) -> None:
    limits = SharedLimits(store, clock=lambda: 500.0)
    assert limits.throttle("dest:google").current(500.0) == 1.0
    limits.slow_down("dest:google", 30, hint="421 4.7.0 try again later")
    other = SharedLimits(store, clock=lambda: 500.0).throttle("dest:google")
    assert other.current(500.0) == 0.5 and other.suspended(529.0) and not other.suspended(531.0)
