"""Token buckets per key, bounded in number."""

from __future__ import annotations

import pytest

from twilio_video_operator.tokens.ratelimit import KeyedLimiter, Limit, RateLimits, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = KeyedLimiter(Limit(rate=2, burst=3), clock)

    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") == pytest.approx(0.5)


def test_refused_requests_do_not_consume() -> None:
    clock = Clock()
    limiter = KeyedLimiter(Limit(rate=1, burst=1), clock)
    limiter.acquire("a")
    for _ in range(5):
        assert limiter.acquire("a") > 0
    clock.now += 1
    assert limiter.acquire("a") == 0.0


def test_keys_are_independent() -> None:
    limiter = KeyedLimiter(Limit(rate=1, burst=1), Clock())
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("b") == 0.0
    assert limiter.acquire("a") > 0


def test_the_bucket_never_exceeds_its_burst() -> None:
    clock = Clock()
    limiter = KeyedLimiter(Limit(rate=10, burst=2), clock)
    limiter.acquire("a")
    clock.now += 3600
    assert [limiter.acquire("a") == 0.0 for _ in range(3)] == [True, True, False]


def test_a_clock_going_back_grants_nothing() -> None:
    clock = Clock()
    limiter = KeyedLimiter(Limit(rate=1, burst=1), clock)
    limiter.acquire("a")
    clock.now -= 100
    assert limiter.acquire("a") > 0


def test_the_table_is_bounded() -> None:
    limiter = KeyedLimiter(Limit(rate=1, burst=1), Clock(), max_keys=100)
    for index in range(1000):
        limiter.acquire(index)
    assert len(limiter) == 100


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert [retry_after_seconds(wait) for wait in (0.01, 1.0, 1.2, 7.9)] == [1, 1, 2, 8]


def test_limits_are_sane() -> None:
    limits = RateLimits()
    assert limits.per_identity.rate < limits.per_room.rate <= limits.per_caller.rate <= limits.per_source.rate
    with pytest.raises(ValueError):
        Limit(rate=0, burst=1)
    with pytest.raises(ValueError):
        Limit(rate=1, burst=0.5)
