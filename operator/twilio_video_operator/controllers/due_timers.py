"""Per-object due times: the next drift resync and the next wake-up (schedule, retry, request).

The timer loop asks two questions on every turn: which objects are due now, and when is the next one due.
Both are answered from a heap in O(log n) per timer, not by scanning every object: with 10,000 rooms each
reconcile setting a timer, a scan per turn made the loop quadratic in the number of rooms.

Entries are never removed from the heap when a timer moves or is cleared; the stale entry stays until it
reaches the top and is dropped there, or until the heap is compacted because stale entries outnumber live
ones.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)
Which = Literal["resync", "wake"]

COMPACT_SLACK = 64
"""Stale entries tolerated beyond three per live timer before the heap is rebuilt."""


@dataclass
class _Timers:
    resync_at: datetime | None = None
    wake_at: datetime | None = None
    wake_observes: bool = False

    def at(self, which: Which) -> datetime | None:
        return self.resync_at if which == "resync" else self.wake_at


class DueTimers(Generic[K]):
    """Due times in the clock of the caller (an injectable clock in tests). Not thread-safe; one loop."""

    def __init__(self) -> None:
        self._timers: dict[K, _Timers] = {}
        self._heap: list[tuple[datetime, int, K, Which]] = []
        self._order = itertools.count()  # ties are served first set, first served; keys are never compared

    def set_resync(self, key: K, at: datetime | None) -> None:
        timers = self._timers.setdefault(key, _Timers())
        if at != timers.resync_at:
            timers.resync_at = at
            self._push(key, "resync", at)

    def resync_at(self, key: K) -> datetime | None:
        timers = self._timers.get(key)
        return timers.resync_at if timers else None

    def set_wake(self, key: K, at: datetime, *, observe: bool = False) -> None:
        """Wake at ``at`` (an earlier pending wake-up wins); ``observe`` asks for a look at Twilio."""
        timers = self._timers.setdefault(key, _Timers())
        if timers.wake_at is None or at < timers.wake_at:
            timers.wake_at = at
            self._push(key, "wake", at)
        timers.wake_observes = timers.wake_observes or observe

    def clear_wake(self, key: K) -> None:
        timers = self._timers.get(key)
        if timers is not None:
            timers.wake_at = None
            timers.wake_observes = False

    def discard(self, key: K) -> None:
        self._timers.pop(key, None)

    def pop_due(self, now: datetime) -> list[tuple[K, bool]]:
        """Keys due at ``now`` with whether they ask for an observation; their due entries are consumed."""
        fired: dict[K, bool] = {}
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key, which = heapq.heappop(heap)
            timers = self._timers.get(key)
            if timers is None or timers.at(which) != at:
                continue  # moved, cleared or consumed since it was pushed
            if which == "resync":
                timers.resync_at = None
                fired[key] = True
            else:
                observes = timers.wake_observes
                timers.wake_at = None
                timers.wake_observes = False
                fired[key] = fired.get(key, False) or observes
        return list(fired.items())

    def next_due(self) -> datetime | None:
        heap = self._heap
        while heap:
            at, _, key, which = heap[0]
            timers = self._timers.get(key)
            if timers is not None and timers.at(which) == at:
                return at
            heapq.heappop(heap)
        return None

    def _push(self, key: K, which: Which, at: datetime | None) -> None:
        if at is None:
            return
        heapq.heappush(self._heap, (at, next(self._order), key, which))
        if len(self._heap) > 3 * len(self._timers) + COMPACT_SLACK:
            self._compact()

    def _compact(self) -> None:
        live = [
            entry
            for entry in self._heap
            if (timers := self._timers.get(entry[2])) is not None and timers.at(entry[3]) == entry[0]
        ]
        heapq.heapify(live)
        self._heap = live

    def __contains__(self, key: object) -> bool:
        return key in self._timers

    def __len__(self) -> int:
        return len(self._timers)
