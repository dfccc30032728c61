"""The adaptive concurrency cap: it never exceeds its maximum, shrinks on 429s and probes back up."""

from __future__ import annotations

import asyncio

import pytest

from twilio_video_operator.gateway.limiter import AdaptiveLimit


async def test_never_more_in_flight_than_the_limit() -> None:
    limit = AdaptiveLimit(3)
    peak = 0

    async def request() -> None:
        nonlocal peak
        async with limit.slot():
            peak = max(peak, limit.in_flight)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(request() for _ in range(50)))
    assert peak == 3
    assert limit.in_flight == 0


async def test_a_429_drops_the_limit_to_the_others_in_flight() -> None:
    changes: list[int] = []
    limit = AdaptiveLimit(10, on_change=changes.append)
    slots = [limit.slot() for _ in range(6)]
    for slot in slots:
        await slot.__aenter__()
    slots[0].throttled()
    await slots[0].__aexit__(None, None, None)
    assert limit.limit == 5  # five others were in flight when Twilio said no
    for slot in slots[1:]:
        await slot.__aexit__(None, None, None)
    assert changes == [10, 5]


async def test_the_limit_never_falls_below_one() -> None:
    limit = AdaptiveLimit(4)
    async with limit.slot() as slot:
        slot.throttled()
    assert limit.limit == 1


async def test_successes_probe_upwards_but_not_past_the_maximum() -> None:
    limit = AdaptiveLimit(3, probe_factor=2)
    async with limit.slot() as slot:
        slot.throttled()
    assert limit.limit == 1
    for _ in range(2):  # 2 x 1 successes: one more
        async with limit.slot():
            pass
    assert limit.limit == 2
    for _ in range(3):  # 3 successes are not yet 2 x 2
        async with limit.slot():
            pass
    assert limit.limit == 2
    for _ in range(1 + 2 * 3 + 10):
        async with limit.slot():
            pass
    assert limit.limit == 3


async def test_a_throttled_answer_restarts_the_probe_count() -> None:
    limit = AdaptiveLimit(2, probe_factor=2)
    async with limit.slot() as slot:
        slot.throttled()
    async with limit.slot():
        pass
    async with limit.slot() as slot:
        slot.throttled()
    async with limit.slot():
        pass
    assert limit.limit == 1  # never two successes in a row


async def test_waiters_are_served_in_order_when_slots_free_up() -> None:
    limit = AdaptiveLimit(1)
    order: list[int] = []
    gate = asyncio.Event()

    async def first() -> None:
        async with limit.slot():
            await gate.wait()

    async def later(index: int) -> None:
        async with limit.slot():
            order.append(index)

    holder = asyncio.create_task(first())
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(later(index)) for index in range(5)]
    await asyncio.sleep(0)
    assert order == []
    gate.set()
    await asyncio.gather(holder, *waiting)
    assert order == [0, 1, 2, 3, 4]


async def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    limit = AdaptiveLimit(1)
    entered = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with limit.slot():
            entered.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await entered.wait()
    waiter = asyncio.create_task(limit.slot().__aenter__())
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    await task
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limit.in_flight == 0
    async with limit.slot():  # the slot is free again
        assert limit.in_flight == 1


async def test_a_waiter_cancelled_after_being_granted_gives_the_slot_back() -> None:
    limit = AdaptiveLimit(1)
    first = limit.slot()
    await first.__aenter__()
    waiter = asyncio.create_task(limit.slot().__aenter__())
    await asyncio.sleep(0)
    await first.__aexit__(None, None, None)  # grants the slot to the waiter...
    waiter.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limit.in_flight == 0


def test_maximum_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdaptiveLimit(0)
