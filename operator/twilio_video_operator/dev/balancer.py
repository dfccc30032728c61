"""The playground's stand-in for a Kubernetes Service in front of several operator replicas.

It forwards each HTTP request to one of the replicas that answered ``GET /readyz`` with 200 at the last
probe (every :data:`PROBE_INTERVAL` seconds), in turn, as kube-proxy sends traffic to the ready endpoints of
a Service only. A request whose connection is refused before anything was sent goes to the next ready
replica (the probe had not noticed yet that one went away).
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
HOP_HEADERS = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length"})


class Balancer:
    """Serves on 127.0.0.1 and forwards to the ready replicas among ``backends()`` (base URLs)."""

    def __init__(self, backends: Callable[[], Sequence[str]]) -> None:
        self._backends = backends
        self._ready: list[str] = []
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

        async def ready(url: str) -> bool:
            try:
                timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
                async with session.get(url + "/readyz", timeout=timeout) as answer:
                    return answer.status == 200
            except (aiohttp.ClientError, TimeoutError, OSError):
                return False

        backends = list(self._backends())
        answers = await asyncio.gather(*(ready(url) for url in backends))
        self._ready = [url for url, ok in zip(backends, answers, strict=True) if ok]

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
