"""The controllers' one queue and timer engine: due work runs once per object at a time, in time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from twilio_video_operator.controllers.work_queue import WorkQueue

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def settle(queue: WorkQueue[str], rounds: int = 20) -> None:
    for _ in range(rounds):
        queue.wake()
        await asyncio.sleep(0)


async def test_requests_run_when_due_and_periodic_timers_observe() -> None:
    clock = Clock()
    ran: list[tuple[str, bool]] = []

    async def work(key: str, observe: bool) -> None:
        ran.append((key, observe))

    queue: WorkQueue[str] = WorkQueue(work, name="test", clock=clock)
    queue.start()
    try:
        queue.request("a")
        queue.request("b", after=30)
        queue.set_periodic("c", T0 + timedelta(seconds=60))
        await settle(queue)
        assert ran == [("a", False)]
        clock.now = T0 + timedelta(seconds=30)
        await settle(queue)
        assert ran[-1] == ("b", False)
        clock.now = T0 + timedelta(seconds=60)
        await settle(queue)
        assert ran[-1] == ("c", True) and len(ran) == 3
        assert queue.periodic_at("c") is None  # consumed: the work sets the next one
    finally:
        await queue.stop()


async def test_one_object_never_runs_twice_at_once_and_runs_again_when_free() -> None:
    clock = Clock()
    release = asyncio.Event()
    running = 0
    peak = 0
    runs = 0

    async def work(key: str, observe: bool) -> None:
        nonlocal running, peak, runs
        running += 1
        runs += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    queue: WorkQueue[str] = WorkQueue(work, name="test", clock=clock)
    queue.start()
    try:
        queue.request("a")
        await settle(queue)
        queue.request("a")  # due while busy
        await settle(queue)
        assert (runs, queue.busy("a")) == (1, True)
        release.set()
        await settle(queue)
        assert runs == 2 and peak == 1
    finally:
        await queue.stop()


async def test_crashed_work_is_retried_later_and_discard_forgets_an_object() -> None:
    clock = Clock()
    calls: list[str] = []

    async def work(key: str, observe: bool) -> None:
        calls.append(key)
        if key == "bad":
            raise RuntimeError("boom")

    queue: WorkQueue[str] = WorkQueue(work, name="test", clock=clock)
    queue.start()
    try:
        queue.request("bad")
        queue.request("gone", after=10)
        queue.discard("gone")
        await settle(queue)
        assert calls == ["bad"] and len(queue) == 1  # "bad" waits for its retry; "gone" is forgotten
        clock.now = T0 + timedelta(seconds=600)
        await settle(queue)
        assert calls == ["bad", "bad"]
    finally:
        await queue.stop()
