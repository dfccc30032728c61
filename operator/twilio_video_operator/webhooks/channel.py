"""A bounded hand-off from an HTTP callback handler to the task that processes the events.

The handler answers Twilio as soon as an event is queued; the processing (Kubernetes reads and writes,
perhaps a Twilio call) happens on a consumer task. When the queue is full the handler answers 503 with
``Retry-After`` instead of growing memory; Twilio retries later.

The HTTP server and the consumer may run on different event loops (the reconciler runs on a thread of its
own, see :mod:`twilio_video_operator.reconciler`), so the queue is a plain deque under a lock and the
consumer is woken through its own loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from twilio_video_operator import metrics
from twilio_video_operator.webhooks.dedupe import Deduplicator

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1_000
DRAIN_POLL_SECONDS = 0.01


@dataclass(frozen=True)
class CallbackEvent:
    """One verified callback: the account it came from and its form parameters (first value of each).

    ``raw`` keeps the request as Twilio signed it (path with query, form body, signature), so that a replica
    that does not reconcile can hand the event to the one that does, which verifies it again."""

    account_sid: str
    params: Mapping[str, str]
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    raw: SignedRequest | None = None


@dataclass(frozen=True)
class SignedRequest:
    """A callback request as received: ``path`` (with its query), form ``body`` and ``X-Twilio-Signature``."""

    path: str
    body: bytes
    signature: str


Sink = Callable[[CallbackEvent], Awaitable[None]]


class Offer(Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    FULL = "full"


class CallbackChannel:
    """Queue, deduplication and consumer of one callback endpoint."""

    def __init__(
        self, name: str, *, capacity: int = DEFAULT_CAPACITY, dedupe: Deduplicator | None = None
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._queue: collections.deque[CallbackEvent] = collections.deque()
        self._in_flight = 0
        self._capacity = capacity
        self._dedupe = dedupe or Deduplicator()
        self._sink: Sink | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._consumer_loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None

    def offer(self, event: CallbackEvent, key: Hashable) -> Offer:
        """Queue ``event`` unless an event with ``key`` was accepted before or the queue is full."""
        with self._lock:
            if self._dedupe.seen(key):
                return Offer.DUPLICATE
            if len(self._queue) >= self._capacity:
                return Offer.FULL
            self._queue.append(event)
            self._dedupe.add(key)
            depth = len(self._queue)
        metrics.WEBHOOK_QUEUE_DEPTH.labels(self.name).set(depth)
        self._wake()
        return Offer.ACCEPTED

    def _wake(self) -> None:
        loop, wakeup = self._consumer_loop, self._wakeup
        if loop is not None and wakeup is not None:
            with contextlib.suppress(RuntimeError):  # the consumer's loop has just closed
                loop.call_soon_threadsafe(wakeup.set)

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def attached(self) -> bool:
        """Whether a consumer on the running loop processes the events."""
        consumer = self._consumer
        return (
            consumer is not None
            and not consumer.done()
            and self._consumer_loop is asyncio.get_running_loop()
            and self._sink is not None
        )

    def attach(self, sink: Sink) -> None:
        """Process queued and future events with ``sink`` on a task of the running loop (replacing any)."""
        self._sink = sink
        loop = asyncio.get_running_loop()
        if self._consumer is None or self._consumer.done() or self._consumer_loop is not loop:
            self._consumer_loop, self._wakeup = loop, asyncio.Event()
            self._consumer = loop.create_task(self._consume(), name=f"callbacks {self.name}")

    async def detach(self) -> None:
        """Stop processing; events still queued wait for the next :meth:`attach`."""
        self._sink = None
        consumer, self._consumer = self._consumer, None
        self._consumer_loop = self._wakeup = None
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def drained(self) -> None:
        """Wait until every queued event was processed (tests, orderly shutdown), from any loop."""
        while self._queue or self._in_flight:  # noqa: ASYNC110 - the consumer may be on another loop
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    async def _consume(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            with self._lock:
                event = self._queue.popleft() if self._queue and self._sink is not None else None
                if event is not None:
                    self._in_flight += 1
            if event is None:
                wakeup.clear()
                if not self._queue:
                    await wakeup.wait()
                continue
            try:
                sink = self._sink
                if sink is not None:
                    await sink(event)
            except asyncio.CancelledError:
                with self._lock:  # not processed: it stays first in line for the next consumer
                    self._queue.appendleft(event)
                raise
            except Exception:
                logger.exception("processing a %s callback failed", self.name)
            finally:
                with self._lock:
                    self._in_flight -= 1
                metrics.WEBHOOK_QUEUE_DEPTH.labels(self.name).set(len(self._queue))
