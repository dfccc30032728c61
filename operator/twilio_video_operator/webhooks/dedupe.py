"""Bounded memory of the callbacks already accepted, so Twilio's retries and replays are processed once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

#: Events remembered at most; the oldest are forgotten first.
MAX_EVENTS = 20_000


class Deduplicator:
    """Remembers the last ``max_events`` keys. Checking does not record; call :meth:`add` once accepted."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self._seen: OrderedDict[Hashable, None] = OrderedDict()
        self._max = max_events

    def seen(self, key: Hashable) -> bool:
        return key in self._seen

    def add(self, key: Hashable) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._max:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
