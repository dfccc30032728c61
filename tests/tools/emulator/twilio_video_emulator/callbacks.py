"""Asynchronous, signed delivery of status callbacks, with a delivery log for tests.

Each callback is signed like Twilio does: ``X-Twilio-Signature`` is base64(HMAC-SHA1(the Auth Token of the
account that owns the resource, URL + the sorted parameter names each followed by its value)). For GET the
parameters travel in the query string and the signature covers the full URL alone, which is what
``RequestValidator.validate(url, {}, sig)`` checks.
Receiver errors and timeouts are recorded in :attr:`CallbackDispatcher.log`, never raised.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

log = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` value Twilio sends for ``url`` with form ``params``."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode("utf-8"), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(list(params.items()))


@dataclass
class _Delivery:
    url: str
    method: str
    params: dict[str, str]
    event: str
    auth_token: str


class CallbackDispatcher:
    """Queues callbacks and delivers them in order from a background task started by :meth:`start`."""

    def __init__(
        self, auth_token: str, *, now: Callable[[], datetime] | None = None, timeout: float = 5.0
    ) -> None:
        self.auth_token = auth_token
        self.timeout = timeout
        self._now = now or (lambda: datetime.now(UTC))
        self.log: list[dict[str, Any]] = []
        self._queue: collections.deque[_Delivery] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._in_flight = 0

    # -- producer side ------------------------------------------------------------------------------

    def send(
        self, url: str, method: str, params: dict[str, str], event: str, auth_token: str | None = None
    ) -> None:
        """Queue one delivery, signed with ``auth_token`` (the owning account's; default
        :attr:`auth_token`); returns at once."""
        token = auth_token if auth_token is not None else self.auth_token
        self._queue.append(_Delivery(url, method.upper(), dict(params), event, token))
        if self._wakeup is not None:
            self._wakeup.set()
        if self._idle is not None:
            self._idle.clear()

    @property
    def pending(self) -> int:
        return len(self._queue) + self._in_flight

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._worker is not None:
            return
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        if self._queue:
            self._wakeup.set()
        else:
            self._idle.set()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._worker = asyncio.create_task(self._run(), name="emulator-callbacks")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def drain(self, seconds: float) -> bool:
        """Wait until every queued delivery was attempted; False if ``seconds`` pass first."""
        if self._idle is None:
            return not self._queue
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # -- delivery -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None and self._idle is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                delivery = self._queue.popleft()
                self._in_flight = 1
                try:
                    await self._deliver(delivery)
                finally:
                    self._in_flight = 0
            if not self._queue:
                self._idle.set()

    async def _deliver(self, delivery: _Delivery) -> None:
        assert self._session is not None
        headers = {"Content-Type": FORM_CONTENT_TYPE, "User-Agent": "TwilioProxy/1.1"}
        status: int | None = None
        error: str | None = None
        try:
            if delivery.method == "GET":
                url = _with_query(delivery.url, delivery.params)
                headers["X-Twilio-Signature"] = twilio_signature(delivery.auth_token, url, {})
                # encoded=True: send the URL byte for byte as signed (no re-quoting of the query).
                async with self._session.get(URL(url, encoded=True), headers=headers) as response:
                    await response.read()
                    status = response.status
            else:
                headers["X-Twilio-Signature"] = twilio_signature(
                    delivery.auth_token, delivery.url, delivery.params
                )
                async with self._session.post(
                    URL(delivery.url, encoded=True),
                    data=urlencode(list(delivery.params.items())),
                    headers=headers,
                ) as response:
                    await response.read()
                    status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            error = type(exc).__name__
            log.warning("status callback %s to %s failed: %s", delivery.event, delivery.url, error)
        self.log.append(
            {
                "url": delivery.url,
                "event": delivery.event,
                "method": delivery.method,
                "status_code": status,
                "error": error,
                "params": delivery.params,
                "delivered_at": self._now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
