"""Bounded waiting: every wait of the demo names what it waits for, and says so when it gives up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL = 0.25


class StepFailed(Exception):
    """A step of the demo did not go as the story says; the message tells what was expected."""


async def wait_for(
    what: str,
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float,
    interval: float = POLL_INTERVAL,
    explain: Callable[[], Awaitable[str]] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than ``None`` and return that; after ``within``
    seconds raise :class:`StepFailed` naming ``what`` (and, with ``explain``, what was seen instead)."""
    deadline = time.monotonic() + within
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            seen = f"; {await explain()}" if explain is not None else ""
            raise StepFailed(f"gave up after {within:.0f}s waiting for {what}{seen}")
        await asyncio.sleep(interval)


def expect(condition: bool, message: str) -> None:
    """Fail the step with ``message`` unless ``condition`` holds."""
    if not condition:
        raise StepFailed(message)
