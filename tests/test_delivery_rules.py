"""Pure delivery arithmetic: backoff, GCRA pacing, windows, adaptive throttle, MX groups."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.core.backoff import RetryPolicy
from dispatcher.core.rates import Limits, Throttle, grantable, is_throttle, reserve, window_start
from dispatcher.core.shaping import Shaper

T0 = datetime(2026, 3, 1, 12, 30, 45, 123, tzinfo=UTC)


def test_backoff_doubles_with_jitter_and_caps() -> None:
    policy = RetryPolicy(first=timedelta(minutes=5), cap=timedelta(hours=1), jitter=0.2)
    rng = random.Random(1)
    for attempts, base in [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 3600), (40, 3600)]:
        delays = [policy.delay(attempts, rng).total_seconds() for _ in range(200)]
        assert base * 0.8 <= min(delays) and max(delays) <= base * 1.2
        assert max(delays) - min(delays) > base * 0.2  # really spread


def test_backoff_gives_up_after_max_age_and_never_retries_past_it() -> None:
    policy = RetryPolicy(max_age=timedelta(days=3))
    first = T0
    assert policy.next_attempt(first_attempt_at=first, now=first + timedelta(days=3),
                               attempts=30) is None
    late = policy.next_attempt(first_attempt_at=first,
                               now=first + timedelta(days=3) - timedelta(minutes=1), attempts=30)
    assert late == first + timedelta(days=3)
    hinted = policy.next_attempt(first_attempt_at=first, now=first, attempts=1,
                                 not_before=first + timedelta(hours=2))
    assert hinted == first + timedelta(hours=2)


def test_gcra_reservations_are_evenly_spaced_and_shared() -> None:
    first = reserve(None, 100.0, rate=10, count=5)
    assert [round(first.slot(i), 3) for i in range(5)] == [100.0, 100.1, 100.2, 100.3, 100.4]
    # A second worker reserving right after continues where the first stopped.
    second = reserve(first.tat, 100.0, rate=10, count=3)
    assert second.start == pytest.approx(100.5)
    # An idle key does not bank unlimited credit: at most ``burst`` seconds.
    idle = reserve(50.0, 100.0, rate=10, count=1, burst=1.0)
    assert idle.start == 99.0


def test_windows_and_limits() -> None:
    assert window_start(T0, "m") == T0.replace(second=0, microsecond=0)
    assert window_start(T0, "h") == T0.replace(minute=0, second=0, microsecond=0)
    assert window_start(T0, "d") == datetime(2026, 3, 1, tzinfo=UTC)
    limits = Limits(per_second=50, per_hour=1000, per_day=5000)
    assert limits.windows == {"h": 1000, "d": 5000}
    assert grantable({"h": 990, "d": 10}, limits.windows, 100) == 10
    assert grantable({"h": 1000}, limits.windows, 5) == 0
    stricter = limits.stricter(Limits(per_second=20, per_minute=100, per_day=9000))
    assert stricter == Limits(per_second=20, per_minute=100, per_hour=1000, per_day=5000)
    with pytest.raises(ValueError):
        Limits(per_day=0)


@pytest.mark.parametrize(("code", "text", "expected"), [
    (421, "4.7.0 Try again later, closing connection.", True),
    (451, "4.7.28 Our system has detected an unusual rate of unsolicited mail", True),
    (450, "4.2.1 The user you are trying to contact is receiving mail too quickly", False),
    (452, "Too many recipients received this hour", True),
    (421, "4.7.0 [TS04] Messages from 1.2.3.4 temporarily deferred", True),
    (451, "4.3.0 Mail server temporarily rejected message", False),
    (550, "5.7.1 too many complaints", False),
])
def test_throttle_detection(code: int, text: str, expected: bool) -> None:
    from dispatcher.core.replies import parse_status

    assert is_throttle(code, text, parse_status(text)) is expected


def test_throttle_halves_suspends_and_recovers() -> None:
    throttle = Throttle(recovery=100.0)
    slowed = throttle.slow_down(10.0, suspend=30)
    assert slowed.current(10.0) == 0.5 and slowed.suspended(39.0) and not slowed.suspended(40.0)
    assert slowed.current(60.0) == pytest.approx(0.75)
    assert slowed.current(200.0) == 1.0
    again = slowed.slow_down(10.0, suspend=30).slow_down(10.0, suspend=30)
    assert again.current(10.0) == 0.125
    for _ in range(10):
        again = again.slow_down(10.0, suspend=30)
    assert again.current(10.0) == 0.05
    yahoo = throttle.slow_down(0.0, suspend=60, hint="421 4.7.0 [TS04] deferred")
    assert yahoo.suspended_until == 4 * 3600


def test_mx_groups() -> None:
    shaper = Shaper.builtin({"google": {"per_second": 7}, "example.org": {"connections": 2}})
    assert shaper.group("GMAIL.com") == shaper.group("googlemail.com") == "google"
    assert shaper.group("acme.test", ["aspmx.l.google.com."]) == "google"
    assert shaper.group("corp.test", ["corp-test.mail.protection.outlook.com"]) == "microsoft"
    assert shaper.group("yahoo.co.uk") == "yahoo"
    assert shaper.group("small.test", ["mx.small.test"]) == "small.test"
    assert shaper.shape("google").per_second == 7 and shaper.shape("google").tls_required
    assert shaper.shape("example.org").connections == 2
    assert shaper.shape("small.test") == shaper.default
