"""The work queue's due timers and the per-object locks every controller uses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from twilio_video_operator.controllers.due_timers import DueTimers
from twilio_video_operator.controllers.keyed_locks import KeyedLocks

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


def test_moved_and_cleared_timers_do_not_fire_at_their_old_time() -> None:
    timers: DueTimers[str] = DueTimers()
    timers.set_resync("a", at(10))
    timers.set_resync("a", at(30))  # moved later
    timers.set_wake("b", at(5))
    timers.clear_wake("b")
    timers.set_wake("c", at(8))
    timers.discard("c")
    assert timers.next_due() == at(30)
    assert timers.pop_due(at(29)) == []
    assert timers.pop_due(at(30)) == [("a", True)]
    assert timers.next_due() is None


def test_due_keys_come_out_in_due_order_once_each() -> None:
    timers: DueTimers[str] = DueTimers()
    for second, key in ((3, "c"), (1, "a"), (2, "b")):
        timers.set_wake(key, at(second))
    timers.set_resync("a", at(2))
    assert timers.pop_due(at(5)) == [("a", True), ("b", False), ("c", False)]


def test_a_wake_set_again_after_it_fired_fires_again() -> None:
    timers: DueTimers[str] = DueTimers()
    timers.set_wake("a", at(1))
    assert timers.pop_due(at(1)) == [("a", False)]
    timers.set_wake("a", at(1), observe=True)
    assert timers.pop_due(at(1)) == [("a", True)]
    assert timers.pop_due(at(1)) == []


def test_stale_entries_are_compacted_while_live_timers_survive() -> None:
    timers: DueTimers[int] = DueTimers()
    for key in range(10):
        timers.set_resync(key, at(1000 + key))
    for step in range(2000):  # every reconcile moves the resync: stale entries pile up
        timers.set_resync(step % 10, at(2000 + step))
    assert len(timers._heap) <= 3 * len(timers) + 64 + 1
    fired = timers.pop_due(at(10_000))
    assert sorted(key for key, _ in fired) == list(range(10))
    assert all(timers.resync_at(key) is None for key in range(10))
