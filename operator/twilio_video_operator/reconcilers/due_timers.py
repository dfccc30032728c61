"""Per-object due times: the next drift resync and the next wake-up (schedule, retry, request)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass
class _Timers:
    resync_at: datetime | None = None
    wake_at: datetime | None = None
    wake_observes: bool = False

    def due(self) -> datetime | None:
        times = [t for t in (self.resync_at, self.wake_at) if t is not None]
        return min(times) if times else None


class DueTimers(Generic[K]):
    """Due times in the clock of the caller (an injectable clock in tests). Not thread-safe; one loop."""

    def __init__(self) -> None:
        self._timers: dict[K, _Timers] = {}

    def set_resync(self, key: K, at: datetime | None) -> None:
        self._timers.setdefault(key, _Timers()).resync_at = at

    def resync_at(self, key: K) -> datetime | None:
        timers = self._timers.get(key)
        return timers.resync_at if timers else None

    def set_wake(self, key: K, at: datetime, *, observe: bool = False) -> None:
        """Wake at ``at`` (an earlier pending wake-up wins); ``observe`` asks for a look at Twilio."""
        timers = self._timers.setdefault(key, _Timers())
        if timers.wake_at is None or at < timers.wake_at:
            timers.wake_at = at
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
        fired: list[tuple[K, bool]] = []
        for key, timers in self._timers.items():
            due = timers.due()
            if due is None or due > now:
                continue
            observe = timers.wake_observes and timers.wake_at is not None and timers.wake_at <= now
            if timers.resync_at is not None and timers.resync_at <= now:
                observe = True
                timers.resync_at = None
            if timers.wake_at is not None and timers.wake_at <= now:
                timers.wake_at = None
                timers.wake_observes = False
            fired.append((key, observe))
        return fired

    def next_due(self) -> datetime | None:
        times = [due for timers in self._timers.values() if (due := timers.due()) is not None]
        return min(times) if times else None

    def __contains__(self, key: object) -> bool:
        return key in self._timers

    def __len__(self) -> int:
        return len(self._timers)
