"""``POST /twilio/message-events``: Programmable Messaging status callbacks of notification messages.

The operator sets this URL, with ``?kind=&namespace=&name=&uid=&ref=`` naming the object and the
notification (the signature covers the query), as the ``StatusCallback`` of each message it sends. Requests
go through the shared callback endpoint (:mod:`.endpoint`: 405, 413, 400, 403 for a signature not made with
an Auth Token that speaks for the ``AccountSid``, deduplication, bounded queue, 204) and are applied by the
notifications handlers on the ``message-events`` channel. Repeats are recognised by message SID and status.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from urllib.parse import urlencode

from aiohttp import web

from twilio_video_operator.webhooks.endpoint import callback_handler

PATH = "/twilio/message-events"
CHANNEL = "message-events"
REQUIRED_FIELDS = ("AccountSid", "MessageSid", "MessageStatus")


def message_event_key(params: Mapping[str, str]) -> Hashable:
    """Identity of a message event: message and status."""
    return (params.get("MessageSid", ""), params.get("MessageStatus", ""))


def message_callback_url(
    public_base_url: str, kind: str, namespace: str, name: str, uid: str, reference: str
) -> str:
    """The ``StatusCallback`` of one notification message."""
    query = urlencode({"kind": kind, "namespace": namespace, "name": name, "uid": uid, "ref": reference})
    return f"{public_base_url.rstrip('/')}{PATH}?{query}"


def install_message_events(app: web.Application) -> None:
    """Route installer for the operator's HTTP server."""
    app.router.add_route("*", PATH, callback_handler(CHANNEL, REQUIRED_FIELDS, message_event_key))
