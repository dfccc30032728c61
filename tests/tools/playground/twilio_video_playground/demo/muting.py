"""Step 4: a moderator mutes an identity's audio. The operator changes every other participant's subscribe
rules at Twilio, so nobody receives that audio whatever the muted client does; an Event records who muted
whom and why. Unmuting gives the audio back."""

from __future__ import annotations

from typing import Any

import aiohttp

from twilio_video_operator.kube import EVENTS, VIDEOROOMS
from twilio_video_playground.demo.clients import join_or_fail, mint
from twilio_video_playground.demo.context import Demo
from twilio_video_playground.demo.joining import ROOM
from twilio_video_playground.demo.objects import NAMESPACE, is_converged, status_of, wait_object
from twilio_video_playground.demo.waiting import StepFailed, wait_for

LISTENER = "bob"
MUTED = "guest-eve"
REASON = "background noise"


async def subscribed_kinds(demo: Demo, room_sid: str, listener: str, publisher: str) -> set[str]:
    """The kinds of ``publisher``'s tracks that ``listener`` receives, as Twilio's REST API reports them."""
    credentials = demo.playground.credentials
    headers = {"Authorization": aiohttp.encode_basic_auth(credentials["api_key"], credentials["api_secret"])}
    url = f"{demo.emulator_url}/v1/Rooms/{room_sid}/Participants/{listener}/SubscribedTracks"
    async with demo.http.get(url, headers=headers) as answer:
        if answer.status != 200:
            raise StepFailed(f"GET {url} answered {answer.status}")
        page = await answer.json(content_type=None) or {}
    tracks = page.get("subscribed_tracks") or []
    return {str(track["kind"]) for track in tracks if track.get("publisher_sid") == publisher}


async def mute_event(demo: Demo, reason: str) -> dict[str, Any] | None:
    for event in await demo.playground.client.list(EVENTS, NAMESPACE):
        involved = event.get("involvedObject") or {}
        if (involved.get("kind"), involved.get("name")) == ("VideoRoom", ROOM) and (
            event.get("reason") == reason and MUTED in str(event.get("message"))
        ):
            return event
    return None


async def muted_identity_is_not_heard(demo: Demo) -> None:
    listener = await join_or_fail(demo, await mint(demo, ROOM, LISTENER))
    speaker = await join_or_fail(demo, await mint(demo, ROOM, MUTED))
    print(f"{LISTENER} ({listener}) and {MUTED} ({speaker}) join {ROOM}, each publishing audio and video")
    room = await wait_object(demo, VIDEOROOMS, ROOM, f"VideoRoom {NAMESPACE}/{ROOM}", is_converged)
    room_sid = str(status_of(room).get("sid"))

    async def hears(kinds: set[str]) -> set[str] | None:
        received = await subscribed_kinds(demo, room_sid, listener, speaker)
        return received if received == kinds else None

    received = await wait_for(f"{LISTENER} to receive {MUTED}", lambda: hears({"audio", "video"}), within=5)
    print(f"{LISTENER} receives {MUTED}'s tracks: {sorted(received)}")

    moderation = {"mutedIdentities": [{"identity": MUTED, "tracks": "audio"}], "reasons": {MUTED: REASON}}
    await demo.playground.client.patch(VIDEOROOMS, NAMESPACE, ROOM, {"spec": {"moderation": moderation}})
    print(f"A moderator sets spec.moderation.mutedIdentities: [{{identity: {MUTED}, tracks: audio}}]")
    received = await wait_for(
        f"the operator to stop {MUTED}'s audio", lambda: hears({"video"}), within=demo.wait_seconds
    )
    print(f"Twilio's subscriptions of {LISTENER} now hold only {MUTED}'s {sorted(received)}")
    event = await wait_for("a Muted Event", lambda: mute_event(demo, "Muted"), within=demo.wait_seconds)
    print(f"Event {event.get('type')} Muted on VideoRoom {NAMESPACE}/{ROOM}: {event.get('message')}")

    unmuted: dict[str, Any] = {"spec": {"moderation": {"mutedIdentities": [], "reasons": None}}}
    await demo.playground.client.patch(VIDEOROOMS, NAMESPACE, ROOM, unmuted)
    print(f"The moderator removes the mute of {MUTED}")
    received = await wait_for(
        f"{LISTENER} to receive {MUTED}'s audio again",
        lambda: hears({"audio", "video"}),
        within=demo.wait_seconds,
    )
    print(f"{LISTENER} receives {MUTED}'s tracks again: {sorted(received)}")
