"""The process-wide cap on Twilio requests in flight, which adapts to Twilio's own concurrency limit.

Twilio throttles an account on *concurrent* requests: past its limit it answers 429 (error 20429). A fixed
cap above that limit turns every burst into 429s and Retry-After waits; a cap below it wastes throughput.
So the cap moves, between 1 and ``TWILIO_MAX_CONCURRENCY``:

- a 429 means more requests were in flight than Twilio allows: the cap drops to the number that were in
  flight besides the throttled one (never below 1);
- a run of successes probes upwards: after ``probe_factor * cap`` consecutive answers without a 429 the cap
  grows by one, so a limit that was raised, or a burst from another client that has ended, is found again.

Probing costs at most one throttled request per ``probe_factor * cap`` answers, and a throttled request is
never processed by Twilio, so it is safe to retry.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

DEFAULT_PROBE_FACTOR = 8


class AdaptiveLimit:
    """An async semaphore whose size follows Twilio's answers. Use :meth:`slot` around each request.

    Waiters are served first in, first out; a waiter cancelled after it was granted a slot gives it back.
    """

    def __init__(
        self,
        maximum: int,
        *,
        probe_factor: int = DEFAULT_PROBE_FACTOR,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        if maximum < 1:
            raise ValueError("maximum must be at least 1")
        self.maximum = maximum
        self._limit = maximum
        self._probe_factor = max(1, probe_factor)
        self._in_flight = 0
        self._successes = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._on_change = on_change
        if on_change is not None:
            on_change(self._limit)

    @property
    def limit(self) -> int:
        """Requests allowed in flight right now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def slot(self) -> _Slot:
        """``async with limit.slot() as slot: ...; slot.throttled()`` when Twilio answered 429."""
        return _Slot(self)

    async def _acquire(self) -> None:
        if not self._waiters and self._in_flight < self._limit:
            self._in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted, then cancelled: give the slot back
                self._in_flight -= 1
                self._grant()
            else:
                self._waiters.remove(waiter)
            raise

    def _release(self, throttled: bool) -> None:
        others = self._in_flight - 1
        self._in_flight = others
        if throttled:
            self._successes = 0
            self._set(max(1, min(self._limit, others)))
        else:
            self._successes += 1
            if self._limit < self.maximum and self._successes >= self._probe_factor * self._limit:
                self._successes = 0
                self._set(self._limit + 1)
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self._in_flight < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_flight += 1
                waiter.set_result(None)

    def _set(self, limit: int) -> None:
        if limit != self._limit:
            self._limit = limit
            if self._on_change is not None:
                self._on_change(limit)


class _Slot:
    def __init__(self, owner: AdaptiveLimit) -> None:
        self._owner = owner
        self._throttled = False

    def throttled(self) -> None:
        """Twilio answered this request with 429."""
        self._throttled = True

    async def __aenter__(self) -> _Slot:
        await self._owner._acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._owner._release(self._throttled)
