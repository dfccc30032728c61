"""The token service's read-through cache: fresh, stale-while-refreshing, expired; one load per key."""

from __future__ import annotations

import asyncio

import pytest

from twilio_video_operator.tokens.cache import RefreshingCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.failure: Exception | None = None

    async def __call__(self) -> int:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return self.calls


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fresh_entries_are_served_without_loading() -> None:
    clock, load = Clock(), Loader()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=2, max_stale=4)
    first = await cache.get("k", load)
    clock.now += 1.9
    assert await cache.get("k", load) == first and load.calls == 1
    assert first.read_at == 100.0


async def test_stale_entries_are_served_once_more_while_one_refresh_runs() -> None:
    clock, load = Clock(), Loader()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=2, max_stale=4)
    await cache.get("k", load)
    clock.now += 3
    stale = [await cache.get("k", load) for _ in range(3)]
    assert [read.value for read in stale] == [1, 1, 1]
    await settle()
    assert load.calls == 2
    assert (await cache.get("k", load)).value == 2


async def test_expired_entries_are_loaded_before_answering() -> None:
    clock, load = Clock(), Loader()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=2, max_stale=4)
    await cache.get("k", load)
    clock.now += 4
    assert (await cache.get("k", load)).value == 2


async def test_concurrent_misses_share_one_load() -> None:
    clock, load = Clock(), Loader()
    load.gate = asyncio.Event()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=2, max_stale=4)
    waiting = [asyncio.create_task(cache.get("k", load)) for _ in range(10)]
    await settle()
    load.gate.set()
    results = await asyncio.gather(*waiting)
    assert load.calls == 1 and {read.value for read in results} == {1}


async def test_load_errors_reach_the_caller_and_are_not_cached() -> None:
    clock, load = Clock(), Loader()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=2, max_stale=4)
    load.failure = RuntimeError("api down")
    with pytest.raises(RuntimeError):
        await cache.get("k", load)
    load.failure = None
    assert (await cache.get("k", load)).value == 2


async def test_a_failed_background_refresh_keeps_the_old_value_until_it_expires() -> None:
    clock, load = Clock(), Loader()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=2, max_stale=4)
    await cache.get("k", load)
    clock.now += 3
    load.failure = RuntimeError("api down")
    assert (await cache.get("k", load)).value == 1
    await settle()
    clock.now += 1
    with pytest.raises(RuntimeError):
        await cache.get("k", load)


async def test_a_zero_ttl_always_loads() -> None:
    clock, load = Clock(), Loader()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=0, max_stale=0)
    assert [(await cache.get("k", load)).value for _ in range(3)] == [1, 2, 3]


async def test_the_cache_is_bounded() -> None:
    clock, load = Clock(), Loader()
    cache: RefreshingCache[int] = RefreshingCache(clock, ttl=2, max_stale=4, max_entries=5)
    for key in range(20):
        await cache.get(key, load)
    assert len(cache) == 5


def test_max_stale_cannot_be_shorter_than_the_ttl() -> None:
    with pytest.raises(ValueError):
        RefreshingCache(Clock(), ttl=2, max_stale=1)
