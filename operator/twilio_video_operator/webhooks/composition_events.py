"""``POST /twilio/composition-events``: Twilio's composition status callbacks.

The operator sets this URL (plus ``?namespace=&name=&uid=`` naming the object, which the signature
covers) as each composition's ``StatusCallback``. Requests go through the shared callback endpoint
(:mod:`.endpoint`: 405, 413, 400, 403, deduplication, bounded queue, 204) and are processed by the
Composition handlers, which attach to the ``composition-events`` channel of the operator's
:class:`~twilio_video_operator.webhooks.hub.WebhookHub`.

Repeats are recognised by composition SID, event and ``PercentageDone``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from urllib.parse import urlencode

from aiohttp import web

from twilio_video_operator.webhooks.endpoint import callback_handler

PATH = "/twilio/composition-events"
CHANNEL = "composition-events"
REQUIRED_FIELDS = ("AccountSid", "CompositionSid", "StatusCallbackEvent")


def composition_event_key(params: Mapping[str, str]) -> Hashable:
    """Identity of a composition event: composition, event and progress."""
    return (
        params.get("CompositionSid", ""),
        params.get("StatusCallbackEvent", ""),
        params.get("PercentageDone", ""),
    )


def composition_callback_url(public_base_url: str, namespace: str, name: str, uid: str) -> str:
    """The ``StatusCallback`` of one Composition object's Twilio composition."""
    query = urlencode({"namespace": namespace, "name": name, "uid": uid})
    return f"{public_base_url.rstrip('/')}{PATH}?{query}"


def install_composition_events(app: web.Application) -> None:
    """Route installer for the operator's HTTP server."""
    app.router.add_route("*", PATH, callback_handler(CHANNEL, REQUIRED_FIELDS, composition_event_key))
