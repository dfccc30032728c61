"""Token-bucket rate limits, one bucket per key (caller, identity, room, source address), bounded in number.

A bucket holds up to ``burst`` requests and refills at ``rate`` per second. When the table of buckets is
full the least recently used one is dropped (that key starts again with a full bucket), so memory stays
bounded whatever callers send.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """``rate`` requests per second on average, up to ``burst`` at once."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a limit needs a positive rate and a burst of at least 1")


@dataclass(frozen=True)
class RateLimits:
    """The limits of the token service (defaults sized for one busy backend minting for many users)."""

    per_caller: Limit = Limit(rate=100, burst=200)
    per_identity: Limit = Limit(rate=1, burst=5)
    per_room: Limit = Limit(rate=50, burst=100)
    per_source: Limit = Limit(rate=200, burst=400)
    max_keys: int = 10_000


class KeyedLimiter:
    """Buckets of one kind of key. ``clock`` returns seconds (monotonic or not: a jump back is ignored)."""

    def __init__(self, limit: Limit, clock: Callable[[], float], max_keys: int = 10_000) -> None:
        self.limit = limit
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, key: Hashable) -> float:
        """Take one request for ``key``: 0.0 when allowed, else the seconds until it would be."""
        now = self.clock()
        tokens, stamp = self._buckets.pop(key, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + max(0.0, now - stamp) * self.limit.rate)
        if tokens >= 1.0:
            self._store(key, tokens - 1.0, now)
            return 0.0
        self._store(key, tokens, now)
        return (1.0 - tokens) / self.limit.rate

    def _store(self, key: Hashable, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


def retry_after_seconds(wait: float) -> int:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    return max(1, math.ceil(wait))
