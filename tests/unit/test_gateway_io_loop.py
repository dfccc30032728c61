"""The gateway's I/O loop: Twilio exchanges run on a thread of their own, so a busy main loop does not hold
concurrency slots empty."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from local_http import serve_locally
from twilio_video_operator.gateway.io_loop import IoLoop, IoLoopClosed
from twilio_video_operator.gateway.limiter import AdaptiveLimit
from twilio_video_operator.gateway.transport import InstrumentedHttpClient


@pytest.fixture
async def io() -> AsyncIterator[IoLoop]:
    loop = IoLoop("test-io")
    yield loop
    await loop.close()


async def test_coroutines_run_on_the_io_thread_and_results_and_errors_come_back(io: IoLoop) -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    async def fails() -> None:
        raise ValueError("boom")

    assert await io.run(where()) == "test-io"
    with pytest.raises(ValueError, match="boom"):
        await io.run(fails())
    assert io.call(lambda: threading.current_thread().name) == "test-io"


async def test_cancelling_the_caller_cancels_the_coroutine_on_the_io_loop(io: IoLoop) -> None:
    started = threading.Event()
    cancelled = threading.Event()

    async def waits() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caller = asyncio.create_task(io.run(waits()))
    assert await asyncio.to_thread(started.wait, 5)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await asyncio.to_thread(cancelled.wait, 5)


async def test_close_stops_the_thread_and_refuses_more_work() -> None:
    io = IoLoop("test-io-close")
    assert not io.running
    assert await io.run(asyncio.sleep(0, result=1)) == 1
    assert io.running
    await io.close()
    await io.close()
    assert not io.running
    with pytest.raises(IoLoopClosed):
        await io.run(asyncio.sleep(0))


async def test_a_freed_slot_carries_the_next_request_while_the_callers_loop_is_blocked(io: IoLoop) -> None:
    """Three requests, one slot: the second and third are sent as the first and second are answered, even
    though the loop that asked for them is blocked the whole time."""
    server_io = IoLoop("test-server")
    arrived: list[str] = []
    all_arrived = threading.Event()

    async def handler(request: web.Request) -> web.Response:
        arrived.append(request.path)
        if len(arrived) == 3:
            all_arrived.set()
        await asyncio.sleep(0.05)
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_get("/{name}", handler)
    runner, url = await server_io.run(serve_locally(app))
    client = InstrumentedHttpClient(None, limit=AdaptiveLimit(1), request_timeout=10.0, io=io)
    try:
        calls = [asyncio.ensure_future(client.request("GET", f"{url}/r{index}")) for index in range(3)]
        await asyncio.sleep(0)  # the calls are handed to the I/O loop
        # Block this loop (as a burst of reconciles would) until the server has seen all three requests.
        assert all_arrived.wait(timeout=10), f"only {arrived} arrived while the caller's loop was busy"
        responses = await asyncio.gather(*calls)
        assert sorted(response.status_code for response in responses) == [200, 200, 200]
    finally:
        await client.close()
        await server_io.run(runner.cleanup())
        await server_io.close()
    assert client.session is not None and client.session.closed
