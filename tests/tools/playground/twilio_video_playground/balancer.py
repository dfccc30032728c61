"""The playground's stand-in for a Kubernetes Service in front of several operator replicas.

It forwards each HTTP request to one of the ready replicas, in turn, as kube-proxy sends traffic to the ready
endpoints of a Service only. Every :data:`PROBE_INTERVAL` seconds it asks each replica's ``GET /readyz``:

- 200 makes a replica ready;
- any other answer, or a refused connection, makes it unready at once (it said so, or it is gone: as a
  terminating pod leaves the endpoints);
- a probe that gets no answer within :data:`PROBE_TIMEOUT` (a busy replica) counts as a failure, and
  :data:`FAILURE_THRESHOLD` of them in a row make it unready, as a readiness probe's ``failureThreshold``
  does: one slow answer does not take the only ready replica out of the Service.

A request whose connection is refused before anything was sent goes to the next ready replica (the probe had
not noticed yet that one went away).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)

PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 1.0
FAILURE_THRESHOLD = 3
HOP_HEADERS = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})


class Balancer:
    """Serves on 127.0.0.1 and forwards to the ready replicas among ``backends()`` (base URLs)."""

    def __init__(self, backends: Callable[[], Sequence[str]]) -> None:
        self._backends = backends
        self._ready: list[str] = []
        self._timeouts: dict[str, int] = {}  # probes in a row that got no answer, by replica
        self._turn = itertools.count()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._prober: asyncio.Task[None] | None = None
        self.url = ""

    @property
    def ready(self) -> list[str]:
        return list(self._ready)

    async def start(self, port: int = 0) -> str:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        address = self._runner.addresses[0]
        self.url = f"http://127.0.0.1:{address[1]}"
        await self.probe()
        self._prober = asyncio.create_task(self._probe_forever(), name="balancer probes")
        return self.url

    async def stop(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def probe(self) -> None:
        """Ask every replica's ``/readyz`` once and keep those that are ready."""
        assert self._session is not None
        session = self._session

        async def ready(url: str) -> bool | None:
            """Whether the replica is ready; ``None``: it did not answer in time."""
            try:
                timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
                async with session.get(url + "/readyz", timeout=timeout) as answer:
                    return answer.status == 200
            except TimeoutError:
                return None
            except (aiohttp.ClientError, OSError):
                return False

        backends = list(self._backends())
        answers = await asyncio.gather(*(ready(url) for url in backends))
        was_ready = set(self._ready)
        timeouts = {
            url: self._timeouts.get(url, 0) + 1
            for url, ok in zip(backends, answers, strict=True)
            if ok is None
        }
        self._timeouts = timeouts
        self._ready = [
            url
            for url, ok in zip(backends, answers, strict=True)
            if ok or (ok is None and url in was_ready and timeouts[url] < FAILURE_THRESHOLD)
        ]

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            await self.probe()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_HEADERS}
        candidates = self.ready
        if not candidates:
            return web.Response(status=503, text="no ready operator replica")
        start = next(self._turn)
        for attempt in range(len(candidates)):
            backend = candidates[(start + attempt) % len(candidates)]
            try:
                async with self._session.request(
                    request.method, backend + request.raw_path, data=body, headers=headers
                ) as answer:
                    payload = await answer.read()
                    copied = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
                    return web.Response(status=answer.status, body=payload, headers=copied)
            except aiohttp.ClientConnectorError:
                continue  # nothing was sent: another replica may take it
        return web.Response(status=503, text="no operator replica answered")
