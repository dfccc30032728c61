"""A small circuit breaker: stop hammering a Twilio service that keeps failing, probe it after a pause."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass


class CircuitState(enum.IntEnum):
    """Values match the ``twilio_circuit_state`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass(frozen=True)
class CircuitSettings:
    failure_threshold: int = 5
    """Consecutive transient failures (5xx, connection errors, timeouts) that open the circuit."""
    cooldown: float = 30.0
    """Seconds the circuit stays open before one probe request is let through."""


class CircuitOpen(Exception):
    """Raised by :meth:`CircuitBreaker.acquire` while calls are refused; ``retry_after`` in seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"circuit open, retry in {retry_after:.1f}s")
        self.retry_after = retry_after


class CircuitBreaker:
    """Closed -> (N consecutive failures) -> open -> (cool-down) -> half-open -> one probe -> closed or open.

    Not thread-safe; meant for one asyncio loop. ``clock`` returns monotonic seconds; ``on_change`` is
    called with the new state on every transition (the gateway points it at a gauge).
    """

    def __init__(
        self,
        settings: CircuitSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.settings = settings or CircuitSettings()
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        if on_change is not None:
            on_change(self._state)

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose cool-down has passed reports half-open."""
        if self._state is CircuitState.OPEN and self._cooldown_left() <= 0:
            return CircuitState.HALF_OPEN
        return self._state

    def acquire(self) -> None:
        """Ask to send one request; raise :class:`CircuitOpen` when it must not be sent."""
        if self._state is CircuitState.CLOSED:
            return
        if self._state is CircuitState.OPEN:
            left = self._cooldown_left()
            if left > 0:
                raise CircuitOpen(left)
            self._set(CircuitState.HALF_OPEN)
        if self._probe_in_flight:
            raise CircuitOpen(self.settings.cooldown)
        self._probe_in_flight = True

    def record_success(self) -> None:
        """The service answered (any non-transient outcome, 4xx included)."""
        self._failures = 0
        self._probe_in_flight = False
        if self._state is not CircuitState.CLOSED:
            self._set(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """A transient failure: 5xx, connection error or timeout."""
        self._probe_in_flight = False
        if self._state is CircuitState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._state is CircuitState.CLOSED and self._failures >= self.settings.failure_threshold:
            self._open()

    def record_neutral(self) -> None:
        """An outcome that says nothing about the service's health (429, a cancelled call)."""
        self._probe_in_flight = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._set(CircuitState.OPEN)

    def _cooldown_left(self) -> float:
        return self._opened_at + self.settings.cooldown - self._clock()

    def _set(self, state: CircuitState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)
