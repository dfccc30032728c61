"""The aiohttp handler of a Twilio status-callback endpoint.

Checks, in order: method (405), size (413, over 64 KiB), form encoding and required fields (400),
``X-Twilio-Signature`` with an Auth Token that speaks for the payload's AccountSid (see
:mod:`.accounts`) against ``PUBLIC_BASE_URL`` + path (403; an account without such a token is refused
too), then deduplication and the bounded queue (503 with ``Retry-After`` when full). A verified event is
answered 204 before it is processed; a duplicate is answered 204 and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from twilio_video_operator import metrics
from twilio_video_operator.webhooks.channel import CallbackEvent, Offer, SignedRequest
from twilio_video_operator.webhooks.handoff import HANDOFF_HEADER
from twilio_video_operator.webhooks.hub import HUB_KEY, SETTINGS_KEY
from twilio_video_operator.webhooks.signature import SIGNATURE_HEADER, is_valid_signature, public_url

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
OVERLOAD_RETRY_AFTER_SECONDS = 5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DedupeKey = Callable[[Mapping[str, str]], Hashable]


class _Rejected(Exception):
    def __init__(self, status: int, reason: metrics.WebhookRejection, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


async def read_form(request: web.Request) -> list[tuple[str, str]]:
    """The form fields of a POST body of at most :data:`MAX_BODY_BYTES`; raises ``_Rejected`` otherwise."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _Rejected(413, "too_large", "request body too large")
    body = bytearray()
    while chunk := await request.content.read(16 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _Rejected(413, "too_large", "request body too large")
    if request.content_type != FORM_CONTENT_TYPE:
        raise _Rejected(400, "malformed", f"expected {FORM_CONTENT_TYPE}")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise _Rejected(400, "malformed", "body is not a valid form") from None


def callback_handler(name: str, required: Sequence[str], dedupe_key: DedupeKey) -> Handler:
    """An aiohttp handler for the endpoint ``name`` queueing verified events on ``hub.channel(name)``.

    ``required`` lists the form fields without which a request is malformed (``AccountSid`` among them);
    ``dedupe_key`` maps an event's fields to the identity used to drop repeats.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        metrics.WEBHOOKS_RECEIVED.labels(name).inc()
        try:
            return await _handle(request)
        except _Rejected as rejected:
            metrics.WEBHOOKS_REJECTED.labels(name, rejected.reason).inc()
            logger.info("refused a %s callback: %s", name, rejected, extra={"http_status": rejected.status})
            headers = {"Allow": "POST"} if rejected.status == 405 else None
            if rejected.status == 503:
                headers = {"Retry-After": str(OVERLOAD_RETRY_AFTER_SECONDS)}
            return web.Response(status=rejected.status, text=str(rejected), headers=headers)

    async def _handle(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            raise _Rejected(405, "method", f"method {request.method} not allowed")
        pairs = await read_form(request)
        params: dict[str, str] = {}
        for key, value in pairs:
            params.setdefault(key, value)
        missing = [field for field in required if not params.get(field)]
        if missing:
            raise _Rejected(400, "malformed", f"missing {', '.join(missing)}")
        settings = request.app[SETTINGS_KEY]
        hub = request.app[HUB_KEY]
        handoff = hub.handoff if hub.handoff is not None and hub.handoff.active else None
        handed_off = HANDOFF_HEADER in request.headers
        if handed_off and handoff is not None:
            raise _Rejected(503, "not_leader", "this replica does not lead; try the leader")
        account_sid = params["AccountSid"]
        tokens = hub.accounts.tokens_for(account_sid)
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not tokens:
            if handoff is not None:  # only the leader may know this account's token: it answers
                status = await handoff.relay(
                    SignedRequest(request.raw_path, urlencode(pairs).encode(), signature)
                )
                return web.Response(status=status)
            raise _Rejected(403, "unknown_account", "callbacks of this account cannot be verified")
        url = public_url(settings.PUBLIC_BASE_URL, request.raw_path)
        if not any(is_valid_signature(token, url, pairs, signature) for token in tokens):
            raise _Rejected(403, "signature", "bad or missing X-Twilio-Signature")
        # The signature covers the URL and the sorted fields, so the re-encoded form verifies just the same.
        raw = SignedRequest(request.raw_path, urlencode(pairs).encode(), signature)
        offer = hub.channel(name).offer(CallbackEvent(account_sid, params, raw=raw), dedupe_key(params))
        if offer is Offer.FULL:
            raise _Rejected(503, "overloaded", "too many callbacks waiting; retry later")
        if offer is Offer.DUPLICATE:
            metrics.WEBHOOKS_DUPLICATES.labels(name).inc()
        return web.Response(status=204)

    return handle
