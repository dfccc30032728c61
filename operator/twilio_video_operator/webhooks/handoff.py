"""Callbacks that land on a replica that does not lead are passed to the one that does.

Every replica receives Twilio's callbacks (the Service spreads them). One that does not reconcile still
checks them (signature, size, form, deduplication) and answers Twilio at once; its channel's consumer is
then a :class:`Handoff`, which posts each event, as Twilio signed it, to the leader's URL (from the leader
Lease, :mod:`twilio_video_operator.kube.leader`). The leader checks it again like any callback and
processes it; the one writer of status stays the leader. While no leader is known (a handover), events
wait in the channel and are retried every :data:`RETRY_SECONDS` for up to :data:`MAX_AGE_SECONDS`.

A callback from an account the follower cannot verify itself (a tenant's account, whose Auth Token only the
leader learned) is relayed to the leader synchronously, and the leader's answer is Twilio's.

A handed-off request carries :data:`HANDOFF_HEADER`; a replica that receives one while it does not lead
answers 503, so the sender retries with the new leader and requests never go round in circles.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from twilio_video_operator import metrics
from twilio_video_operator.webhooks.channel import CallbackEvent, SignedRequest, Sink
from twilio_video_operator.webhooks.signature import SIGNATURE_HEADER

logger = logging.getLogger(__name__)

HANDOFF_HEADER = "X-Twilio-Video-Operator-Handoff"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
RETRY_SECONDS = 0.25
MAX_AGE_SECONDS = 120.0
REQUEST_TIMEOUT_SECONDS = 5.0
#: Answers that mean the leader will never accept the event (a retry would be refused again).
FINAL_REFUSALS = frozenset({400, 403, 404, 405, 413})


class Handoff:
    """Posts events to the replica that leads. ``leader_url`` answers the leader's base URL, or ``None``
    while none is known; ``leading`` whether this replica leads itself (then nothing is handed off)."""

    def __init__(
        self,
        leader_url: Callable[[], str | None],
        leading: Callable[[], bool],
        *,
        retry_seconds: float = RETRY_SECONDS,
        max_age_seconds: float = MAX_AGE_SECONDS,
    ) -> None:
        self._leader_url = leader_url
        self._leading = leading
        self.retry_seconds = retry_seconds
        self.max_age_seconds = max_age_seconds
        self._session: aiohttp.ClientSession | None = None

    @property
    def active(self) -> bool:
        """Whether this replica hands callbacks off (it does not lead)."""
        return not self._leading()

    def sink(self, endpoint: str) -> Sink:
        """The channel consumer of ``endpoint`` on a follower."""

        async def deliver(event: CallbackEvent) -> None:
            await self.deliver(endpoint, event)

        return deliver

    async def deliver(self, endpoint: str, event: CallbackEvent) -> None:
        """Post ``event`` to the leader until it takes it, refuses it for good, or it is too old."""
        raw = event.raw
        if raw is None:
            return
        while True:
            age = (datetime.now(UTC) - event.received_at).total_seconds()
            if age > self.max_age_seconds:
                metrics.WEBHOOKS_HANDED_OFF.labels(endpoint, "expired").inc()
                logger.warning("a %s callback found no leader within %.0fs; dropped", endpoint, age)
                return
            status = await self.post(raw)
            if status is not None and 200 <= status < 300:
                metrics.WEBHOOKS_HANDED_OFF.labels(endpoint, "delivered").inc()
                return
            if status in FINAL_REFUSALS:
                metrics.WEBHOOKS_HANDED_OFF.labels(endpoint, "refused").inc()
                logger.info("the leader refused a handed-off %s callback: HTTP %s", endpoint, status)
                return
            await asyncio.sleep(self.retry_seconds)

    async def relay(self, raw: SignedRequest) -> int:
        """Post ``raw`` to the leader once and return its status (503 when no leader answers)."""
        status = await self.post(raw)
        return status if status is not None else 503

    async def post(self, raw: SignedRequest) -> int | None:
        """One attempt; ``None`` when no leader is known or it could not be reached."""
        url = self._leader_url()
        if not url:
            return None
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
            self._session = aiohttp.ClientSession(timeout=timeout)
        headers = {SIGNATURE_HEADER: raw.signature, "Content-Type": FORM_CONTENT_TYPE, HANDOFF_HEADER: "1"}
        try:
            async with self._session.post(
                url.rstrip("/") + raw.path, data=raw.body, headers=headers
            ) as answer:
                return answer.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.debug("the leader at %s did not take a callback: %s", url, exc)
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
