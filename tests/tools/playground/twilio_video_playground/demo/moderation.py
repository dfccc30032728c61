"""Step 3: a moderator blocks an identity; the token service refuses it new tokens, and when it joins
anyway (with a token it got earlier) the operator disconnects it and posts an Event."""

from __future__ import annotations

from typing import Any

from twilio_video_operator.kube import EVENTS, VIDEOROOMS
from twilio_video_playground.demo.clients import ask_token, join_or_fail, mint, participant_status
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.joining import ROOM
from twilio_video_playground.demo.objects import NAMESPACE, is_converged, status_of, wait_object
from twilio_video_playground.demo.waiting import wait_for

BLOCKED = "guest-mallory"  # allowed by the room's guest-* pattern until she is blocked


async def refused(demo: Demo) -> str | None:
    status, answer = await ask_token(demo, ROOM, BLOCKED)
    return f"{status} {answer['error']}" if answer.get("error") == "IdentityBlocked" else None


async def removal_event(demo: Demo) -> dict[str, Any] | None:
    for event in await demo.playground.client.list(EVENTS, NAMESPACE):
        involved = event.get("involvedObject") or {}
        about_room = (involved.get("kind"), involved.get("name")) == ("VideoRoom", ROOM)
        if (
            about_room
            and event.get("reason") == "ParticipantRemoved"
            and BLOCKED in str(event.get("message"))
        ):
            return event
    return None


async def blocked_identity_is_removed(demo: Demo) -> None:
    earlier = await mint(demo, ROOM, BLOCKED)
    print(f"{BLOCKED} gets a token while she is still allowed ({earlier.describe()})")

    patch = {"spec": {"moderation": {"blockedIdentities": [BLOCKED]}}}
    await demo.playground.client.patch(VIDEOROOMS, NAMESPACE, ROOM, patch)
    print(f"A moderator sets VideoRoom {NAMESPACE}/{ROOM} spec.moderation.blockedIdentities: [{BLOCKED}]")
    what = f"the operator to process the new block list of {NAMESPACE}/{ROOM}"
    room = await wait_object(demo, VIDEOROOMS, ROOM, what, is_converged, shown="Synced")
    answer = await wait_for(
        f"the token service to refuse {BLOCKED}",
        lambda: refused(demo),
        within=demo.wait_seconds,
        interval=1.0,
    )
    print(f"POST /v1/token for {BLOCKED} -> {answer}")

    participant = await join_or_fail(demo, earlier)
    print(f"{BLOCKED} joins anyway with her earlier token -> 201, participant {participant}")
    room_sid = str(status_of(room).get("sid"))

    async def disconnected() -> str | None:
        status = await participant_status(demo, room_sid, participant)
        return status if status == "disconnected" else None

    await wait_for(f"the operator to disconnect {participant}", disconnected, within=demo.wait_seconds)
    print(f"The operator removed her: Twilio reports participant {participant} disconnected")
    event = await wait_for(
        f"a ParticipantRemoved Event on VideoRoom {NAMESPACE}/{ROOM}",
        lambda: removal_event(demo),
        within=demo.wait_seconds,
    )
    kind, reason, message = event.get("type"), event.get("reason"), event.get("message")
    print(f"Event {kind} {reason} on VideoRoom {NAMESPACE}/{ROOM}: {message}")
