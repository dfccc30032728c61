"""Circuit breaker state transitions, driven by an injected clock."""

from __future__ import annotations

import pytest

from twilio_video_operator.gateway.circuit import CircuitBreaker, CircuitOpen, CircuitSettings, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[CircuitState]:
    return []


@pytest.fixture
def breaker(clock: Clock, changes: list[CircuitState]) -> CircuitBreaker:
    settings = CircuitSettings(failure_threshold=3, cooldown=30.0)
    return CircuitBreaker(settings, clock=clock, on_change=changes.append)


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.acquire()
        breaker.record_failure()


def test_starts_closed_and_reports_it(breaker: CircuitBreaker, changes: list[CircuitState]) -> None:
    assert breaker.state is CircuitState.CLOSED
    assert changes == [CircuitState.CLOSED]


def test_opens_after_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen) as raised:
        breaker.acquire()
    assert raised.value.retry_after == pytest.approx(30.0)


def test_a_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    breaker.acquire()
    breaker.record_success()
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED


def test_neutral_outcomes_do_not_count(breaker: CircuitBreaker) -> None:
    fail(breaker, 2)
    for _ in range(10):
        breaker.acquire()
        breaker.record_neutral()
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN


def test_half_open_lets_exactly_one_probe_through(
    breaker: CircuitBreaker, clock: Clock, changes: list[CircuitState]
) -> None:
    fail(breaker, 3)
    clock.now += 10
    with pytest.raises(CircuitOpen) as raised:
        breaker.acquire()
    assert raised.value.retry_after == pytest.approx(20.0)
    clock.now += 20
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.acquire()  # everyone else waits for the probe
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    breaker.acquire()
    assert changes == [CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_failed_probe_reopens_for_a_new_cooldown(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 30
    breaker.acquire()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    clock.now += 29
    with pytest.raises(CircuitOpen):
        breaker.acquire()
    clock.now += 1
    breaker.acquire()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_abandoned_probe_frees_the_slot(breaker: CircuitBreaker, clock: Clock) -> None:
    fail(breaker, 3)
    clock.now += 31
    breaker.acquire()
    breaker.record_neutral()  # e.g. the probe was cancelled or throttled
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.acquire()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
