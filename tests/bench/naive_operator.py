"""A naive VideoRoom operator: the baseline the benchmark compares the real operator with.

It is what a quickstart-style controller looks like: the synchronous ``twilio`` client, the room created
in ``on.create``, and a ``kopf.timer`` polling each room's connected participants every 2 seconds. To be a
fair baseline it writes the participant count only when it changes, and completes the room when the object
is deleted. Run it with kopf's own CLI::

    TWILIO_ACCOUNT_SID=AC... TWILIO_API_KEY=SK... TWILIO_API_SECRET=... \\
        TWILIO_BASE_URL=http://127.0.0.1:PORT \\
        python -m kopf run --standalone --all-namespaces --liveness=http://127.0.0.1:PORT2/healthz \\
        tests/bench/naive_operator.py

``TWILIO_BASE_URL`` points the client at the emulator (the project's host-rewriting HTTP client).
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import kopf
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from twilio_video_operator.gateway.base_url import BaseUrlHttpClient

GROUP, VERSION, PLURAL = "video.openclaw.io", "v1alpha1", "videorooms"
POLL_INTERVAL_SECONDS = 2.0


@cache
def twilio_client() -> Client:
    return Client(
        os.environ["TWILIO_API_KEY"],
        os.environ["TWILIO_API_SECRET"],
        os.environ["TWILIO_ACCOUNT_SID"],
        http_client=BaseUrlHttpClient(os.environ.get("TWILIO_BASE_URL")),
    )


def room_options(spec: kopf.Spec, namespace: str | None, name: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "unique_name": spec.get("uniqueName") or f"{namespace}:{name}",
        "type": spec.get("type", "group"),
        "max_participants": spec.get("maxParticipants", 25),
    }
    for field, argument in (
        ("emptyRoomTimeout", "empty_room_timeout"),
        ("unusedRoomTimeout", "unused_room_timeout"),
    ):
        if field in spec:
            options[argument] = spec[field]
    return options


@kopf.on.create(GROUP, VERSION, PLURAL)
def create_room(spec: kopf.Spec, name: str, namespace: str | None, patch: kopf.Patch, **_: Any) -> None:
    room = twilio_client().video.v1.rooms.create(**room_options(spec, namespace, name))
    patch.status["sid"] = room.sid
    patch.status["uniqueName"] = room.unique_name
    patch.status["roomStatus"] = room.status


@kopf.timer(GROUP, VERSION, PLURAL, interval=POLL_INTERVAL_SECONDS)
def poll_participants(status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    sid = status.get("sid")
    if not sid:
        return
    connected = len(twilio_client().video.v1.rooms(sid).participants.list(status="connected"))
    if (status.get("participants") or {}).get("connected") != connected:
        patch.status["participants"] = {"connected": connected}


@kopf.on.delete(GROUP, VERSION, PLURAL)
def complete_room(status: kopf.Status, **_: Any) -> None:
    sid = status.get("sid")
    if not sid:
        return
    try:
        twilio_client().video.v1.rooms(sid).update(status="completed")
    except TwilioRestException as exc:
        if exc.status not in (400, 404):  # already ended, or gone
            raise
