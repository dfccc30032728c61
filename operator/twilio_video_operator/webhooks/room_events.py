"""``POST /twilio/room-events``: Twilio's room status callbacks (set as each room's ``StatusCallback``)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from aiohttp import web

from twilio_video_operator.webhooks.endpoint import callback_handler

PATH = "/twilio/room-events"
CHANNEL = "room-events"
REQUIRED_FIELDS = ("AccountSid", "RoomSid", "StatusCallbackEvent")


def room_event_key(params: Mapping[str, str]) -> Hashable:
    """Identity of a room event: room, event, sequence number (or participant) and timestamp."""
    return (
        params.get("RoomSid", ""),
        params.get("StatusCallbackEvent", ""),
        params.get("SequenceNumber") or params.get("ParticipantSid") or "",
        params.get("Timestamp", ""),
    )


def install_room_events(app: web.Application) -> None:
    """Route installer for the operator's HTTP server."""
    app.router.add_route("*", PATH, callback_handler(CHANNEL, REQUIRED_FIELDS, room_event_key))
