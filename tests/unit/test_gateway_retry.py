"""Backoff maths and Retry-After parsing of the Twilio gateway."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from twilio_video_operator.gateway.retry import RetryPolicy, parse_retry_after

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class MaxRandom(random.Random):
    """Always draws the top of the range, to observe the ceiling of the jitter."""

    def uniform(self, a: float, b: float) -> float:
        return b


class MinRandom(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (12, 8.0)],
)
def test_full_jitter_ceiling_doubles_then_caps(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    assert policy.backoff(attempt, None, MaxRandom()) == pytest.approx(ceiling)
    assert policy.backoff(attempt, None, MinRandom()) == 0.0


def test_full_jitter_spreads_over_the_whole_range() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=10.0)
    rng = random.Random(42)
    delays = [policy.backoff(3, None, rng) for _ in range(2000)]
    assert all(0.0 <= delay <= 4.0 for delay in delays)
    assert min(delays) < 0.2
    assert max(delays) > 3.8
    assert 1.7 < sum(delays) / len(delays) < 2.3


def test_retry_after_is_a_floor_with_small_jitter_on_top() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    assert policy.backoff(1, 3.0, MinRandom()) == pytest.approx(3.0)
    assert policy.backoff(1, 3.0, MaxRandom()) == pytest.approx(3.5)
    # A server asking for more than max_delay is still honoured.
    assert policy.backoff(4, 20.0, MinRandom()) == pytest.approx(20.0)


def test_backoff_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().backoff(0, None, random.Random(1))


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"base_delay": 2.0, "max_delay": 1.0}, {"total_budget": -1}],
)
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_default_policy_is_small() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 4
    assert policy.total_budget == 30.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 10 ", 10.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_parse_retry_after_http_date() -> None:
    future = format_datetime(NOW + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(future, NOW) == pytest.approx(42.0)
    past = format_datetime(NOW - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(past, NOW) == 0.0
    assert parse_retry_after("Sun, 01 Mar 2026 12:01:00 GMT", NOW) == pytest.approx(60.0)
