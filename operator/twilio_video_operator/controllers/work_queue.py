"""The one queue and timer engine of the controllers: per-object due times and a loop that runs them.

Each object has at most two timers (:class:`~twilio_video_operator.controllers.due_timers.DueTimers`): a
periodic one (a resync or a tick) and a wake-up (a schedule, a retry, a request; an earlier one wins). The
loop sleeps until the next one is due, starts the object's work, and never runs two pieces of work for one
object at once: work that falls due while the object is busy runs again once it is free. At most
``max_parallel`` run at a time, so a burst of due objects does not flood Twilio or the API server: the work
takes one of :attr:`WorkQueue.slots` (inside its reconcile's ``track_reconcile(waits_for=...)``, so the
wait for a slot is measured as queue time, not as work).

A heap of due times serves 10,000 objects with one task, where a framework timer per object would keep
10,000 tasks alive. The clock is injectable (tests move it, then call :meth:`WorkQueue.wake`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from twilio_video_operator.controllers.due_timers import DueTimers

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

#: Longest the loop sleeps without looking at the clock (an injected clock may jump).
MAX_SLEEP_SECONDS = 5.0
#: Work items run at once.
MAX_PARALLEL = 8
#: Seconds before work that crashed runs again.
CRASH_RETRY_SECONDS = 30.0

Work = Callable[[K, bool], Awaitable[None]]
"""``work(key, observe)``: what to do when ``key`` is due (``observe``: its periodic timer fired, or a
request asked for a fresh look). The work sets the object's next timers itself."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class WorkQueue(Generic[K]):
    """Due times and the loop that runs work as it falls due (one per kind and process)."""

    def __init__(
        self,
        work: Work[K],
        *,
        name: str,
        clock: Callable[[], datetime] = utc_now,
        max_parallel: int = MAX_PARALLEL,
    ) -> None:
        self._work = work
        self._name = name
        self._clock = clock
        self._timers: DueTimers[K] = DueTimers()
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[K, asyncio.Task[None]] = {}
        self.slots = asyncio.Semaphore(max_parallel)
        """Held by each piece of work this queue started while it runs (see the module docstring)."""

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop (inside the running event loop)."""
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name=f"{self._name}-queue")

    async def stop(self, *, also: Iterable[asyncio.Task[Any]] = ()) -> None:
        """Stop the loop and cancel the work in flight (and ``also``), as a process exit would."""
        current = asyncio.current_task()
        candidates = (self._loop_task, *self._running.values(), *also)
        tasks = [task for task in dict.fromkeys(candidates) if task is not None and task is not current]
        self._loop_task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._running.clear()

    def wake(self) -> None:
        """Look at the timers now (after the clock was moved, or a timer set)."""
        self._wakeup.set()

    # -- timers ---------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def request(self, key: K, *, after: float = 0.0, observe: bool = False) -> None:
        """Run ``key``'s work ``after`` seconds from now (an earlier pending wake-up wins)."""
        self._timers.set_wake(key, self._clock() + timedelta(seconds=max(after, 0.0)), observe=observe)
        self._wakeup.set()

    def wake_at(self, key: K, at: datetime) -> None:
        """Run ``key``'s work at ``at`` (an earlier pending wake-up wins)."""
        self._timers.set_wake(key, at)
        self._wakeup.set()

    def clear_wake(self, key: K) -> None:
        self._timers.clear_wake(key)

    def set_periodic(self, key: K, at: datetime | None) -> None:
        """Set (or with ``None`` clear) ``key``'s periodic timer; it fires with ``observe``."""
        self._timers.set_resync(key, at)
        self._wakeup.set()

    def periodic_at(self, key: K) -> datetime | None:
        return self._timers.resync_at(key)

    def discard(self, key: K) -> None:
        """Forget ``key``'s timers (the object is gone)."""
        self._timers.discard(key)

    def busy(self, key: K) -> bool:
        running = self._running.get(key)
        return running is not None and not running.done()

    @property
    def timers(self) -> DueTimers[K]:
        """The due times themselves (tests look at them)."""
        return self._timers

    def __len__(self) -> int:
        return len(self._timers)

    # -- the loop -------------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            now = self._clock()
            for key, observe in self._timers.pop_due(now):
                self._spawn(key, observe)
            due = self._timers.next_due()
            delay = MAX_SLEEP_SECONDS if due is None else (due - now).total_seconds()
            self._wakeup.clear()
            # asyncio.timeout, not wait_for: wait_for swallows a cancellation that meets a set event.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(max(delay, 0.01), MAX_SLEEP_SECONDS)):
                    await self._wakeup.wait()

    def _spawn(self, key: K, observe: bool) -> None:
        if self.busy(key):
            # Come back once the running work is over; keep the ask for an observation.
            self._timers.set_wake(key, self._clock(), observe=observe)
            return
        task = asyncio.get_running_loop().create_task(self._run(key, observe), name=f"{self._name} {key}")
        self._running[key] = task
        task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: K, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        self._wakeup.set()

    async def _run(self, key: K, observe: bool) -> None:
        try:
            await self._work(key, observe)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s %s: work crashed", self._name, key)
            self.request(key, after=CRASH_RETRY_SECONDS)
