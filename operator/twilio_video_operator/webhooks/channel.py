"""A bounded hand-off from an HTTP callback handler to the task that processes the events.

The handler answers Twilio as soon as an event is queued; the processing (Kubernetes reads and writes,
perhaps a Twilio call) happens on a consumer task. When the queue is full the handler answers 503 with
``Retry-After`` instead of growing memory; Twilio retries later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from twilio_video_operator import metrics
from twilio_video_operator.webhooks.dedupe import Deduplicator

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1_000


@dataclass(frozen=True)
class CallbackEvent:
    """One verified callback: the account it came from and its form parameters (first value of each)."""

    account_sid: str
    params: Mapping[str, str]
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


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
        self._queue: asyncio.Queue[CallbackEvent] | None = None
        self._capacity = capacity
        self._dedupe = dedupe or Deduplicator()
        self._sink: Sink | None = None
        self._consumer: asyncio.Task[None] | None = None

    def _ensure_queue(self) -> asyncio.Queue[CallbackEvent]:
        if self._queue is None:
            self._queue = asyncio.Queue(self._capacity)
        return self._queue

    def offer(self, event: CallbackEvent, key: Hashable) -> Offer:
        """Queue ``event`` unless an event with ``key`` was accepted before or the queue is full."""
        if self._dedupe.seen(key):
            return Offer.DUPLICATE
        queue = self._ensure_queue()
        try:
            queue.put_nowait(event)
        except asyncio.QueueFull:
            return Offer.FULL
        self._dedupe.add(key)
        metrics.WEBHOOK_QUEUE_DEPTH.labels(self.name).set(queue.qsize())
        return Offer.ACCEPTED

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def attach(self, sink: Sink) -> None:
        """Process queued and future events with ``sink`` on a task of the running loop (replacing any)."""
        self._sink = sink
        if self._consumer is None or self._consumer.done():
            self._consumer = asyncio.get_running_loop().create_task(
                self._consume(), name=f"callbacks {self.name}"
            )

    async def detach(self) -> None:
        """Stop processing; events still queued wait for the next :meth:`attach`."""
        self._sink = None
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def drained(self) -> None:
        """Wait until every queued event was processed (tests, orderly shutdown)."""
        await self._ensure_queue().join()

    async def _consume(self) -> None:
        queue = self._ensure_queue()
        while True:
            event = await queue.get()
            try:
                sink = self._sink
                if sink is not None:
                    await sink(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("processing a %s callback failed", self.name)
            finally:
                queue.task_done()
                metrics.WEBHOOK_QUEUE_DEPTH.labels(self.name).set(queue.qsize())
