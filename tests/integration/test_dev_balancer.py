"""The playground's balancer (the stand-in for a Service in front of the replicas): a replica that says it is
not ready, or is gone, leaves at once; one that is only slow to answer its probe stays until
``FAILURE_THRESHOLD`` probes in a row got no answer, so a busy replica is not taken out of the Service by one
slow answer (which left no replica to send tokens to during a rolling restart on a loaded machine)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web

from twilio_video_playground import balancer as balancer_module
from twilio_video_playground.balancer import FAILURE_THRESHOLD, Balancer

PROBE_TIMEOUT = 0.2


@dataclass
class Replica:
    """An HTTP server whose ``/readyz`` answers ``status``, after ``delay`` seconds."""

    name: str
    status: int = 200
    delay: float = 0.0
    url: str = ""
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/who", self._who)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _readyz(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status)

    async def _who(self, request: web.Request) -> web.Response:
        return web.Response(text=self.name)


@pytest.fixture
async def replicas(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[Replica]]:
    monkeypatch.setattr(balancer_module, "PROBE_TIMEOUT", PROBE_TIMEOUT)
    monkeypatch.setattr(balancer_module, "PROBE_INTERVAL", 3600.0)  # the test probes by itself
    made = [Replica("a"), Replica("b")]
    for replica in made:
        await replica.start()
    yield made
    for replica in made:
        await replica.stop()


@pytest.fixture
async def balancer(replicas: list[Replica]) -> AsyncIterator[Balancer]:
    started = Balancer(lambda: [replica.url for replica in replicas])
    await started.start()
    yield started
    await started.stop()


async def test_a_slow_replica_stays_until_the_failure_threshold(
    replicas: list[Replica], balancer: Balancer
) -> None:
    a, b = replicas
    assert balancer.ready == [a.url, b.url]
    a.delay = PROBE_TIMEOUT * 3
    for _ in range(FAILURE_THRESHOLD - 1):
        await balancer.probe()
        assert balancer.ready == [a.url, b.url]
    await balancer.probe()
    assert balancer.ready == [b.url]
    a.delay = 0.0
    await balancer.probe()
    assert balancer.ready == [a.url, b.url]


async def test_an_answer_in_time_resets_the_count(replicas: list[Replica], balancer: Balancer) -> None:
    a, _ = replicas
    for delay in [PROBE_TIMEOUT * 3] * (FAILURE_THRESHOLD - 1) + [0.0] + [PROBE_TIMEOUT * 3]:
        a.delay = delay
        await balancer.probe()
        assert a.url in balancer.ready, delay


async def test_a_replica_that_says_it_is_not_ready_or_is_gone_leaves_at_once(
    replicas: list[Replica], balancer: Balancer
) -> None:
    a, b = replicas
    a.status = 503
    await balancer.probe()
    assert balancer.ready == [b.url]
    await b.stop()
    await balancer.probe()
    assert balancer.ready == []
    async with aiohttp.ClientSession() as session, session.get(balancer.url + "/who") as answer:
        assert answer.status == 503


async def test_a_replica_never_ready_is_not_added_by_timeouts(replicas: list[Replica]) -> None:
    a, b = replicas
    a.delay = PROBE_TIMEOUT * 3
    started = Balancer(lambda: [replica.url for replica in replicas])
    await started.start()
    try:
        assert started.ready == [b.url]
        await started.probe()
        assert started.ready == [b.url]
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(started.url + "/who") as answer:
                    assert await answer.text() == "b"
    finally:
        await started.stop()
