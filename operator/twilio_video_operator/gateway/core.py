"""The gateway: the one object through which the operator talks to Twilio."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from twilio_video_operator import metrics
from twilio_video_operator.gateway.api import TwilioApi
from twilio_video_operator.gateway.circuit import CircuitBreaker, CircuitState
from twilio_video_operator.gateway.config import GatewayConfig
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.executor import Executor
from twilio_video_operator.gateway.io_loop import IoLoop
from twilio_video_operator.gateway.limiter import AdaptiveLimit
from twilio_video_operator.gateway.notify import NotifyOperations
from twilio_video_operator.gateway.pool import ClientPool
from twilio_video_operator.gateway.sendgrid import SendGridApi
from twilio_video_operator.gateway.transport import InstrumentedHttpClient


class TwilioGateway:
    """Owns the Twilio clients (one per credential set), the concurrency cap and the circuit breakers.

    Create one per process; it may be built outside an event loop. Its clients are created on first use,
    and their exchanges run on the gateway's I/O loop (:mod:`~twilio_video_operator.gateway.io_loop`).
    ``await close()`` on shutdown closes every HTTP session and stops that loop. ``clock``, ``sleep`` and
    ``rng`` are injectable for tests.
    """

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or GatewayConfig()
        self._clock = clock
        self._limit = AdaptiveLimit(
            self.config.max_concurrency, on_change=metrics.TWILIO_CONCURRENCY_LIMIT.set
        )
        self._breakers: dict[str, CircuitBreaker] = {}
        self._io = IoLoop()
        self._pool = ClientPool(
            base_url=self.config.base_url,
            limit=self._limit,
            io=self._io,
            request_timeout=self.config.request_timeout,
            idle_ttl=self.config.idle_client_ttl,
            clock=clock,
            fence=self.config.fence,
        )
        self._executor = Executor(self.config.retry, self.breaker, sleep=sleep, clock=clock, rng=rng)
        self._sendgrid_http: InstrumentedHttpClient | None = None

    def api(self, creds: CredentialSet) -> TwilioApi:
        """The operations, bound to ``creds`` (pass the values just read; a change replaces the client)."""
        return TwilioApi(self._pool, self._executor, creds, self.config.base_url)

    def notify(self, creds: CredentialSet) -> NotifyOperations:
        """Programmable Messaging and Studio operations with ``creds`` (see :mod:`.notify`)."""
        return NotifyOperations(self._pool, self._executor, creds, self.config.base_url)

    def sendgrid(self, api_key: str) -> SendGridApi:
        """SendGrid operations with ``api_key`` (inside the running loop; one HTTP client for all keys)."""
        if self._sendgrid_http is None:
            limit = AdaptiveLimit(self.config.max_concurrency)  # SendGrid's 429s say nothing of Twilio's cap
            self._sendgrid_http = InstrumentedHttpClient(
                None,
                limit=limit,
                request_timeout=self.config.request_timeout,
                io=self._io,
                fence=self.config.fence,
            )
        return SendGridApi(self._sendgrid_http, self._executor, api_key, self.config.sendgrid_base_url)

    def client_for(self, creds: CredentialSet) -> Any:
        """The async ``twilio.rest.Client`` for REST calls with ``creds`` (API key, else Auth Token).

        Call it inside the running loop. Requests made with it share the concurrency cap and metrics but
        not the retry policy; prefer :meth:`api`.
        """
        return self._pool.entry(creds).rest

    def keys_client_for(self, creds: CredentialSet) -> Any:
        """The async ``twilio.rest.Client`` for the Keys API with ``creds`` (Auth Token, else Main key)."""
        return self._pool.entry(creds).keys

    def breaker(self, service: str) -> CircuitBreaker:
        """The circuit breaker of one Twilio service (``video``, ``api``)."""
        breaker = self._breakers.get(service)
        if breaker is None:
            gauge = metrics.TWILIO_CIRCUIT_STATE.labels(service)

            def on_change(state: CircuitState) -> None:
                gauge.set(int(state))

            breaker = CircuitBreaker(self.config.circuit, clock=self._clock, on_change=on_change)
            self._breakers[service] = breaker
        return breaker

    @property
    def client_count(self) -> int:
        """Credential sets with a live client."""
        return len(self._pool)

    async def close(self) -> None:
        """Close every client's HTTP session and stop the I/O loop. The gateway cannot be used afterwards."""
        await self._pool.close()
        if self._sendgrid_http is not None:
            await self._sendgrid_http.close()
        await self._io.close()
