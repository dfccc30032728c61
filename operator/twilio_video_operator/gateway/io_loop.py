"""An event loop on a thread of its own, where every HTTP exchange with Twilio runs.

Twilio limits the requests an account has in flight, so throughput is the number of concurrency slots times
how quickly a freed slot carries the next request. On the operator's main loop a slot freed by a response
waits behind every ready callback before anyone notices: when a thousand objects arrive at once, kopf's
workers fill that queue and slots stood empty for up to a second while hundreds of calls waited for one.
On this loop only Twilio's exchanges run, so a response frees its slot and the next queued request is sent
at once; the main loop hears about the answer when it gets to it.

Only :mod:`~twilio_video_operator.gateway.transport` uses it: the concurrency cap (its futures), the aiohttp
sessions and the sockets all belong to this loop; callers on any loop ``await io.run(coroutine)``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

STOP_TIMEOUT = 10.0


class IoLoopClosed(RuntimeError):
    """The I/O loop was closed; nothing more can run on it."""


class IoLoop:
    """A daemon thread running an asyncio loop, started on first use and stopped by :meth:`close`."""

    def __init__(self, name: str = "twilio-io") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (started now if it was not running yet)."""
        with self._lock:
            if self._closed:
                raise IoLoopClosed("the Twilio I/O loop is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=self._serve, args=(loop, ready), name=self._name, daemon=True
                )
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def in_loop(self) -> bool:
        """True when called from the I/O loop's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the I/O loop and wait for its result; cancelling the caller cancels it."""
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        except BaseException:
            coroutine.close()
            raise
        return await asyncio.wrap_future(future)

    def call(self, function: Callable[[], T]) -> T:
        """Run a plain ``function`` on the I/O loop's thread (to build objects bound to that loop)."""
        if self.in_loop():
            return function()
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def invoke() -> None:
            try:
                result.set_result(function())
            except BaseException as exc:
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(invoke)
        return result.result(timeout=STOP_TIMEOUT)

    async def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread. Idempotent."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)  # what still runs is cancelled as the thread winds down
        await asyncio.to_thread(thread.join, STOP_TIMEOUT)

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(_cancel_all())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
