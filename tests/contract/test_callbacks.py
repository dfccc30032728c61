"""Room status callbacks: event names, Twilio's parameter names, signatures, methods and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from local_http import serve_locally

ROOM_PARAMS = {
    "AccountSid",
    "RoomName",
    "RoomSid",
    "RoomStatus",
    "RoomType",
    "StatusCallbackEvent",
    "Timestamp",
    "SequenceNumber",
}
PARTICIPANT_PARAMS = ROOM_PARAMS | {"ParticipantSid", "ParticipantStatus", "ParticipantIdentity"}
TRACK_PARAMS = PARTICIPANT_PARAMS | {"TrackSid", "TrackKind"}
RECORDING_PARAMS = {
    "AccountSid",
    "RecordingSid",
    "Timestamp",
    "StatusCallbackEvent",
    "RoomSid",
    "RoomName",
    "RoomType",
    "ParticipantSid",
    "SourceSid",
    "RecordingUri",
    "Container",
    "Codec",
    "ParticipantIdentity",
    "TrackName",
    "OffsetFromTwilioVideoEpoch",
    "Type",
}


@dataclass
class Received:
    method: str
    url: str
    params: dict[str, str]
    signature: str
    content_type: str


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 204

    def events(self) -> list[str]:
        return [r.params["StatusCallbackEvent"] for r in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A tiny callback receiver on 127.0.0.1 that records what it gets."""
    app = web.Application()
    holder: list[Receiver] = []

    async def handle(request: web.Request) -> web.Response:
        form = await request.post() if request.method == "POST" else {}
        params = {k: str(v) for k, v in form.items()} if form else dict(request.query)
        holder[0].requests.append(
            Received(
                request.method,
                f"http://{request.host}{request.raw_path}",  # exactly as sent, query encoding included
                params,
                request.headers.get("X-Twilio-Signature", ""),
                request.headers.get("Content-Type", ""),
            )
        )
        return web.Response(status=holder[0].status)

    app.router.add_route("*", "/events", handle)
    runner, url = await serve_locally(app)
    holder.append(Receiver(f"{url}/events"))
    yield holder[0]
    await runner.cleanup()


async def control(emulator_control: Any, method: str, path: str, json: Any = None) -> Any:
    """Call the control API off the test loop, so the receiver keeps answering meanwhile."""
    return await asyncio.to_thread(emulator_control, method, path, json)


async def settle(emulator_control: Any) -> Any:
    answer = await control(emulator_control, "GET", "callbacks?wait=5")
    assert answer.body["pending"] == 0
    return answer.body["deliveries"]


async def test_room_events_are_signed_and_complete(
    twilio_client: Client, emulator: Any, emulator_control: Any, access_token: Any, receiver: Receiver
) -> None:
    room = await asyncio.to_thread(
        twilio_client.video.v1.rooms.create,
        unique_name="hooked",
        status_callback=receiver.url,
        record_participants_on_connect=True,
    )
    join = {
        "identity": "alice",
        "token": access_token("alice", "hooked"),
        "tracks": [{"name": "cam", "kind": "video"}],
    }
    joined = await control(emulator_control, "POST", "rooms/hooked/participants", join)
    alice = joined.body["sid"]
    await control(
        emulator_control, "POST", f"rooms/hooked/participants/{alice}/tracks/cam", {"enabled": False}
    )
    await control(
        emulator_control, "POST", f"rooms/hooked/participants/{alice}/tracks/cam", {"enabled": True}
    )
    await control(
        emulator_control,
        "POST",
        f"rooms/hooked/participants/{alice}/tracks",
        {"name": "mic", "kind": "audio"},
    )
    await control(emulator_control, "DELETE", f"rooms/hooked/participants/{alice}/tracks/mic")
    await control(emulator_control, "POST", "clock/advance", {"seconds": 3})
    await asyncio.to_thread(twilio_client.video.v1.rooms(room.sid).update, status="completed")
    deliveries = await settle(emulator_control)

    assert receiver.events() == [
        "room-created",
        "participant-connected",
        "track-added",
        "recording-started",
        "track-disabled",
        "track-enabled",
        "track-added",
        "recording-started",
        "recording-completed",
        "track-removed",
        "participant-disconnected",
        "recording-completed",
        "room-ended",
    ]
    validator = RequestValidator(emulator.credentials["auth_token"])
    for received in receiver.requests:
        assert received.method == "POST"
        assert received.content_type.startswith("application/x-www-form-urlencoded")
        assert validator.validate(received.url, received.params, received.signature)
        assert not validator.validate(
            received.url, {**received.params, "RoomSid": "RMforged"}, received.signature
        )
        event = received.params["StatusCallbackEvent"]
        expected = (
            RECORDING_PARAMS
            if event.startswith("recording-")
            else TRACK_PARAMS
            if event.startswith("track-")
            else PARTICIPANT_PARAMS
            if event.startswith("participant-")
            else ROOM_PARAMS
        )
        assert expected <= set(received.params), event
        assert received.params["RoomSid"] == room.sid and received.params["RoomName"] == "hooked"
        assert received.params["Timestamp"].endswith("Z") and "T" in received.params["Timestamp"]
    room_events = [r for r in receiver.requests if "SequenceNumber" in r.params]
    sequence = [int(r.params["SequenceNumber"]) for r in room_events]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    ended = receiver.requests[-1].params
    assert ended["RoomStatus"] == "completed" and ended["RoomDuration"] == "3"
    left = next(
        r.params for r in receiver.requests if r.params["StatusCallbackEvent"] == "participant-disconnected"
    )
    assert left["ParticipantDuration"] == "3" and left["ParticipantStatus"] == "disconnected"
    completed = next(
        r.params for r in receiver.requests if r.params["StatusCallbackEvent"] == "recording-completed"
    )
    assert {"MediaUri", "Duration", "Size"} <= set(completed)
    assert completed["MediaUri"] == completed["RecordingUri"] + "/Media"
    assert [d["event"] for d in deliveries] == receiver.events()
    assert all(d["status_code"] == 204 and d["url"] == receiver.url for d in deliveries)


async def test_get_callbacks_carry_params_in_the_query(
    twilio_client: Client, emulator: Any, emulator_control: Any, receiver: Receiver
) -> None:
    room = await asyncio.to_thread(
        twilio_client.video.v1.rooms.create, status_callback=receiver.url, status_callback_method="GET"
    )
    await asyncio.to_thread(twilio_client.video.v1.rooms(room.sid).update, status="completed")
    await settle(emulator_control)
    assert receiver.events() == ["room-created", "room-ended"]
    validator = RequestValidator(emulator.credentials["auth_token"])
    for received in receiver.requests:
        assert received.method == "GET"
        assert validator.validate(received.url, {}, received.signature)


async def test_unused_timeout_sends_room_ended(
    twilio_client: Client, emulator_control: Any, receiver: Receiver
) -> None:
    await asyncio.to_thread(
        twilio_client.video.v1.rooms.create, status_callback=receiver.url, unused_room_timeout=1
    )
    await control(emulator_control, "POST", "clock/advance", {"seconds": 61})
    await settle(emulator_control)
    assert receiver.events() == ["room-created", "room-ended"]
    assert receiver.requests[-1].params["RoomDuration"] == "60"


async def test_receiver_failures_are_logged_not_raised(
    twilio_client: Client, emulator_control: Any, receiver: Receiver
) -> None:
    receiver.status = 500
    room = await asyncio.to_thread(twilio_client.video.v1.rooms.create, status_callback=receiver.url)
    unreachable = await asyncio.to_thread(
        twilio_client.video.v1.rooms.create, status_callback="http://127.0.0.1:9/nothing-listens-here"
    )
    await asyncio.to_thread(twilio_client.video.v1.rooms(room.sid).update, status="completed")
    await asyncio.to_thread(twilio_client.video.v1.rooms(unreachable.sid).update, status="completed")
    deliveries = await settle(emulator_control)
    by_url: dict[str, list[Any]] = {}
    for delivery in deliveries:
        by_url.setdefault(delivery["url"], []).append(delivery["status_code"])
    assert by_url[receiver.url] == [500, 500]
    assert by_url["http://127.0.0.1:9/nothing-listens-here"] == [None, None]
    cleared = await control(emulator_control, "DELETE", "callbacks")
    assert cleared.status == 204
    assert (await control(emulator_control, "GET", "callbacks")).body["deliveries"] == []
