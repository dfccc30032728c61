"""Small bounded caches for the token service.

:class:`TtlCache` forgets entries after a fixed time. :class:`RefreshingCache` reads through to a loader:
an entry younger than ``ttl`` is served as is; one younger than ``max_stale`` is served while a single
background load refreshes it (so no request waits for the API server on a busy key); older or missing
entries are loaded once for all concurrent callers. Every entry carries the time it was read, so callers
can bound what they derive from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")
DEFAULT_MAX_ENTRIES = 10_000


class TtlCache(Generic[V]):
    """A bounded map whose entries expire; ``clock`` returns seconds. The oldest entries go first."""

    def __init__(self, clock: Callable[[], float], max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> tuple[bool, V | None]:
        """``(found, value)``; an expired entry counts as absent and is dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self.clock() >= expires:
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: Hashable, value: V, ttl: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + ttl, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class Read(Generic[V]):
    """A loaded value and when it was read (``clock`` seconds)."""

    value: V
    read_at: float


class RefreshingCache(Generic[V]):
    """Read-through cache with background refresh and one load per key at a time."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        ttl: float,
        max_stale: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if max_stale < ttl:
            raise ValueError("max_stale must be at least ttl")
        self.clock = clock
        self.ttl = ttl
        self.max_stale = max_stale
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Read[V]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Task[Read[V]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> Read[V]:
        """The value of ``key``, loading it with ``load`` when needed (its errors reach the caller)."""
        entry = self._entries.get(key)
        if entry is not None and self.ttl > 0:
            age = self.clock() - entry.read_at
            if age < self.ttl:
                return entry
            if age < self.max_stale:
                self._start(key, load)  # served stale once more while the fresh value loads
                return entry
        return await asyncio.shield(self._start(key, load))

    def _start(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> asyncio.Task[Read[V]]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> Read[V]:
        started = self.clock()
        value = await load()
        entry = Read(value, started)  # the value is at least this fresh
        self._entries.pop(key, None)
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def _finished(self, key: Hashable, task: asyncio.Task[Read[V]]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]
        if not task.cancelled():
            with contextlib.suppress(BaseException):
                task.exception()  # a failed background refresh is retried by the next request

    async def close(self) -> None:
        """Cancel loads in flight."""
        for task in list(self._loading.values()):
            task.cancel()
        for task in list(self._loading.values()):
            with contextlib.suppress(BaseException):
                await task
