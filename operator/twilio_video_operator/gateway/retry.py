"""Backoff maths: exponential backoff with full jitter, honouring Twilio's ``Retry-After``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """How many times, and for how long, the gateway retries one operation before giving up.

    Kept small on purpose: after the budget the classified error goes to the caller, whose own
    (per-object) backoff takes over, so a reconcile never hangs on Twilio.
    """

    max_attempts: int = 4
    """Total attempts, the first one included."""
    total_budget: float = 30.0
    """Seconds from the first attempt after which no further attempt starts (time spent queued for a slot
    of the concurrency cap does not count: with many objects waiting, it says nothing about Twilio)."""
    base_delay: float = 0.5
    """Upper bound of the first backoff; it doubles with each attempt."""
    max_delay: float = 8.0
    """Upper bound of any jittered backoff (a server's ``Retry-After`` may ask for more)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.total_budget < 0 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("delays must be non-negative and max_delay >= base_delay")

    def backoff(self, failed_attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed.

        Without ``retry_after``: full jitter, uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]``.
        With it: at least ``retry_after``, plus up to ``base_delay`` of jitter so that callers throttled
        at the same moment do not all come back at the same moment.
        """
        if failed_attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if retry_after is not None:
            return max(0.0, retry_after) + rng.uniform(0.0, self.base_delay)
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failed_attempt - 1))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date); ``None`` if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())
