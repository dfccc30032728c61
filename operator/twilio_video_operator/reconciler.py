"""kopf, run through its public API on a thread and event loop of its own, while this replica leads.

``kopf.operator()`` treats every task of its loop as its own: when it stops it waits for them and cancels
them. The HTTP server (tokens, callbacks, probes) and the leader election must outlive a term of leadership,
so kopf gets a loop of its own, the way ``kopf.testing.KopfRunner`` runs it. Each term starts a fresh
thread and loop with a fresh ``kopf.OperatorSettings`` (startup handlers adjust them); the operator's
context reaches the handlers as ``memo.operator``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import kopf

from twilio_video_operator.context import OperatorContext

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class Reconciler(Protocol):
    """What the composition root needs of a running kopf: start, stop, and whether it ended by itself."""

    async def start(self, namespaces: Sequence[str]) -> None: ...

    async def stop(self) -> None: ...

    @property
    def exited(self) -> bool: ...


class KopfThread:
    """Runs ``kopf.operator()`` with ``registry`` from :meth:`start` until :meth:`stop`."""

    def __init__(
        self,
        context: OperatorContext,
        registry: kopf.OperatorRegistry,
        kopf_settings: Callable[[], kopf.OperatorSettings],
        *,
        start_timeout: float = START_TIMEOUT,
        stop_timeout: float = STOP_TIMEOUT,
    ) -> None:
        self.context = context
        self.registry = registry
        self.kopf_settings = kopf_settings
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._finished: concurrent.futures.Future[None] | None = None

    @property
    def exited(self) -> bool:
        """Whether kopf ended without being asked to (e.g. its login failed)."""
        return self._finished is not None and self._finished.done() and self._stop is not None

    async def start(self, namespaces: Sequence[str]) -> None:
        """Start kopf and wait until its startup handlers ran; raise what it failed with otherwise."""
        if self._thread is not None:
            return
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        booted: concurrent.futures.Future[None] = concurrent.futures.Future()
        finished: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._finished = finished
        thread = threading.Thread(
            target=self._serve, args=(list(namespaces), ready, booted, finished), name="kopf", daemon=True
        )
        self._thread = thread
        thread.start()
        await asyncio.wrap_future(booted)
        done, _ = await asyncio.wait(
            {asyncio.wrap_future(ready), asyncio.wrap_future(finished)},
            timeout=self.start_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if finished.done():
            await self.stop()
            finished.result()  # raises what kopf failed with
            raise RuntimeError("kopf exited during its startup")
        if not done:
            await self.stop()
            raise RuntimeError(f"kopf did not start within {self.start_timeout:.0f}s")

    async def stop(self) -> None:
        """Ask kopf to stop and wait for its thread (bounded); the next :meth:`start` begins a new term."""
        thread, loop, stop = self._thread, self._loop, self._stop
        self._thread = self._loop = self._stop = None
        if thread is None:
            return
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join, self.stop_timeout)
        if thread.is_alive():
            logger.warning("kopf did not stop within %.0fs; leaving its thread behind", self.stop_timeout)

    def _serve(
        self,
        namespaces: list[str],
        ready: concurrent.futures.Future[None],
        booted: concurrent.futures.Future[None],
        finished: concurrent.futures.Future[None],
    ) -> None:
        async def operate() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            booted.set_result(None)
            try:
                await kopf.operator(
                    registry=self.registry,
                    settings=self.kopf_settings(),
                    memo=kopf.Memo(operator=self.context),
                    standalone=True,
                    clusterwide=not namespaces,
                    namespaces=namespaces,
                    stop_flag=self._stop,
                    ready_flag=ready,
                )
            finally:
                await self.context.kube.close()  # this loop's session

        try:
            asyncio.run(operate())
        except BaseException as exc:  # handed to the caller's loop
            if not booted.done():
                booted.set_result(None)
            finished.set_exception(exc)
        else:
            finished.set_result(None)
