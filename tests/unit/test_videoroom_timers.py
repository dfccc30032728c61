"""Per-object due timers and per-object locks used by the VideoRoom controller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from twilio_video_operator.reconcilers.due_timers import DueTimers
from twilio_video_operator.reconcilers.keyed_locks import KeyedLocks

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_nothing_is_due_without_timers() -> None:
    timers: DueTimers[str] = DueTimers()
    assert timers.next_due() is None and timers.pop_due(at(0)) == [] and len(timers) == 0


def test_resync_fires_once_and_asks_for_an_observation() -> None:
    timers: DueTimers[str] = DueTimers()
    timers.set_resync("a", at(60))
    assert timers.next_due() == at(60) and "a" in timers
    assert timers.pop_due(at(59)) == []
    assert timers.pop_due(at(60)) == [("a", True)]
    assert timers.pop_due(at(120)) == [] and timers.resync_at("a") is None


def test_wake_keeps_the_earliest_time_and_the_observation_request() -> None:
    timers: DueTimers[str] = DueTimers()
    timers.set_wake("a", at(30))
    timers.set_wake("a", at(10), observe=False)
    timers.set_wake("a", at(20), observe=True)
    assert timers.next_due() == at(10)
    assert timers.pop_due(at(10)) == [("a", True)]
    timers.set_wake("b", at(5))
    assert timers.pop_due(at(5)) == [("b", False)]


def test_wake_before_resync_leaves_the_resync_pending() -> None:
    timers: DueTimers[str] = DueTimers()
    timers.set_resync("a", at(600))
    timers.set_wake("a", at(10))
    assert timers.pop_due(at(10)) == [("a", False)]
    assert timers.resync_at("a") == at(600)
    timers.clear_wake("a")
    timers.clear_wake("unknown")
    timers.discard("a")
    assert timers.next_due() is None


async def test_keyed_locks_serialize_per_key_and_are_released() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, label: str, pause: float) -> None:
        async with locks.hold(key):
            order.append(f"{label}+")
            await asyncio.sleep(pause)
            order.append(f"{label}-")

    await asyncio.gather(work("x", "a", 0.02), work("x", "b", 0), work("y", "c", 0))
    assert order.index("a-") < order.index("b+")  # same key: one after the other
    assert order.index("c+") < order.index("a-")  # other key: concurrently
    assert len(locks) == 0
