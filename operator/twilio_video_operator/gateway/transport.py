"""The HTTP client under every gateway call: concurrency cap, per-request records and metrics.

The twilio SDK turns error responses into exceptions that drop the headers, so this client records each
exchange (status, ``Twilio-Request-Id``, ``Retry-After``, duration) into the :class:`CallRecord` of the
operation being run. The record lives in a ``contextvars`` slot: concurrent operations in different tasks
never see each other's records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.http.response import Response

from twilio_video_operator import metrics
from twilio_video_operator.gateway.base_url import AsyncBaseUrlHttpClient
from twilio_video_operator.gateway.catalog import Operation, OpType
from twilio_video_operator.gateway.errors import FencedError
from twilio_video_operator.gateway.io_loop import IoLoop
from twilio_video_operator.gateway.limiter import AdaptiveLimit

REQUEST_ID_HEADER = "Twilio-Request-Id"
RETRY_AFTER_HEADER = "Retry-After"


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its outcome (``status`` is None when no response arrived)."""

    method: str
    path: str
    status: int | None
    duration: float
    request_id: str | None = None
    retry_after: str | None = None
    failure: str | None = None
    """``"network"`` or ``"timeout"`` when no response arrived."""


@dataclass
class CallRecord:
    """The exchanges of one attempt of one operation (a list may take several pages)."""

    operation: Operation
    exchanges: list[Exchange] = field(default_factory=list)
    queued_seconds: float = 0.0
    """Time spent waiting for a slot of the concurrency cap (not Twilio's time, nor the retry budget's)."""

    @property
    def last(self) -> Exchange | None:
        return self.exchanges[-1] if self.exchanges else None


_current_call: ContextVar[CallRecord | None] = ContextVar("twilio_gateway_call", default=None)


@contextmanager
def recording(operation: Operation) -> Iterator[CallRecord]:
    """Collect the exchanges made by the current task while the block runs."""
    record = CallRecord(operation)
    token = _current_call.set(record)
    try:
        yield record
    finally:
        _current_call.reset(token)


def header(headers: Any, name: str) -> str | None:
    """Case-insensitive header lookup on whatever mapping the HTTP library returned."""
    if not isinstance(headers, Mapping):
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return None if value is None else str(value)


def _fallback_operation(method: str, url: str) -> Operation:
    host = urlsplit(url).hostname or ""
    service = host.split(".", 1)[0] if host.endswith("twilio.com") else "other"
    verb = method.upper()
    op_type: OpType = "update" if verb == "POST" else "delete" if verb == "DELETE" else "read"
    return Operation("Other", service, op_type)


class InstrumentedHttpClient(AsyncBaseUrlHttpClient):
    """Async SDK client that caps concurrency, times requests out, and records every exchange.

    ``limit`` is shared by all clients of a gateway, so the cap is process-wide; it shrinks when Twilio
    answers 429 and grows back while it does not (:mod:`~twilio_video_operator.gateway.limiter`).
    ``request_timeout`` applies to each request (the SDK passes none, and aiohttp would otherwise wait five
    minutes). The exchanges, the cap and the aiohttp session live on ``io``, the gateway's I/O loop
    (:mod:`~twilio_video_operator.gateway.io_loop`); callers await them from their own loop.
    """

    def __init__(
        self,
        base_url: str | None,
        *,
        limit: AdaptiveLimit,
        request_timeout: float,
        io: IoLoop,
        fence: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(base_url, pool_connections=False, timeout=request_timeout)
        self._fence = fence
        self._limit = limit
        self._io = io
        self.session = io.call(aiohttp.ClientSession)

    def log_request(self, kwargs: dict[str, Any]) -> None:
        """The gateway logs one structured record per call instead of the SDK's multi-line dump."""

    def log_response(self, status_code: int, response: Any) -> None:
        """See :meth:`log_request`."""

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's HttpClient interface passes it
        allow_redirects: bool = False,
    ) -> Response:
        record = _current_call.get()  # read here: the I/O loop's task has a context of its own
        operation = record.operation if record is not None else _fallback_operation(method, url)
        send_headers = dict(headers or {})
        if auth is not None:
            # Sent as a header rather than aiohttp's deprecated ``auth=``; never logged.
            send_headers["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        exchange = self._exchange(
            _Request(method, url, params, data, send_headers, timeout, allow_redirects), operation, record
        )
        return await self._io.run(exchange)

    async def _exchange(self, request: _Request, operation: Operation, record: CallRecord | None) -> Response:
        """One request on the I/O loop: wait for a slot, send, read the answer, record it."""
        path = urlsplit(request.url).path
        queued = time.perf_counter()
        async with self._limit.slot() as slot:
            if record is not None:
                record.queued_seconds += time.perf_counter() - queued
            # Checked once the request holds its slot, right before it is sent: a wait for a slot may
            # outlast this process's leadership.
            fenced = self._fence() if self._fence is not None and operation.mutating else None
            if fenced is not None:
                metrics.TWILIO_FENCED_REQUESTS.labels(operation.op_id).inc()
                raise FencedError(f"not sent: {fenced}", operation=operation.op_id)
            metrics.TWILIO_INFLIGHT_REQUESTS.inc()
            started = time.perf_counter()
            try:
                response: Response = await super().request(
                    request.method,
                    request.url,
                    params=request.params,
                    data=request.data,
                    headers=request.headers,
                    auth=None,
                    timeout=request.timeout if request.timeout is not None else self.timeout,
                    allow_redirects=request.allow_redirects,
                )
                if response.status_code == 429:
                    slot.throttled()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = "timeout" if isinstance(exc, TimeoutError) else "network"
                exchange = Exchange(
                    request.method, path, None, time.perf_counter() - started, failure=failure
                )
                _observe(operation, exchange, record)
                raise
            finally:
                metrics.TWILIO_INFLIGHT_REQUESTS.dec()
        exchange = Exchange(
            request.method,
            path,
            response.status_code,
            time.perf_counter() - started,
            request_id=header(response.headers, REQUEST_ID_HEADER),
            retry_after=header(response.headers, RETRY_AFTER_HEADER),
        )
        _observe(operation, exchange, record)
        return response

    async def close(self) -> None:
        """Close the aiohttp session (on the I/O loop, where it lives)."""
        session = self.session
        if session is None or session.closed:
            return
        if self._io.running:
            await self._io.run(session.close())


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    params: dict[str, object] | None
    data: dict[str, object] | None
    headers: dict[str, str]
    timeout: float | None
    allow_redirects: bool


def _observe(operation: Operation, exchange: Exchange, record: CallRecord | None) -> None:
    if record is not None:
        record.exchanges.append(exchange)
    op_id = operation.op_id
    metrics.TWILIO_OUTBOUND_API_REQUESTS.labels(operation.service, operation.op_type, op_id).inc()
    metrics.TWILIO_OUTBOUND_API_REQUEST_DURATION.labels(op_id).observe(exchange.duration)
    if exchange.status is None or exchange.status >= 400:
        status_label = str(exchange.status) if exchange.status is not None else exchange.failure or "network"
        metrics.TWILIO_OUTBOUND_API_ERRORS.labels(operation.service, op_id, status_label).inc()
    if exchange.status == 429:
        metrics.TWILIO_THROTTLED_REQUESTS.labels(op_id).inc()
