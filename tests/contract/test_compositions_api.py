"""Compositions through the real twilio client: CRUD, validation, the state machine, signed callbacks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_compositions_support import (
    COMPOSITION_PARAMS,
    GRID_LAYOUT,
    TIMESTAMP_PATTERN,
    CallbackReceiver,
    advance,
    complete_room,
    recorded_room,
    serve_callback_receiver,
    wait_for_status,
)
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client


@pytest.fixture
def callback_receiver(emulator: Any) -> Iterator[CallbackReceiver]:
    yield from serve_callback_receiver(emulator)


COMPOSITION_FIELDS = {
    "account_sid",
    "status",
    "date_created",
    "date_completed",
    "date_deleted",
    "sid",
    "room_sid",
    "audio_sources",
    "audio_sources_excluded",
    "video_layout",
    "resolution",
    "trim",
    "format",
    "bitrate",
    "size",
    "duration",
    "media_external_location",
    "status_callback",
    "status_callback_method",
    "url",
    "links",
}


def test_create_fetch_list_delete(
    twilio_client: Client, join_participant: Any, emulator_control: Any, emulator: Any
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="crud")
    created = twilio_client.video.v1.compositions.create(
        room_sid=room_sid,
        audio_sources=["alice*", "bob"],
        audio_sources_excluded=["noise"],
        video_layout=GRID_LAYOUT,
        resolution="1280x720",
        format="webm",
        trim=False,
        status_callback="http://127.0.0.1:9/events",
        status_callback_method="GET",
    )
    assert re.fullmatch(r"CJ[0-9a-f]{32}", created.sid)
    assert created.status == "enqueued"
    assert created.room_sid == room_sid
    assert created.account_sid == emulator.credentials["account_sid"]
    assert created.audio_sources == ["alice*", "bob"]
    assert created.audio_sources_excluded == ["noise"]
    assert created.video_layout == GRID_LAYOUT
    assert (created.resolution, created.format, created.trim) == ("1280x720", "webm", False)
    assert (created.status_callback, created.status_callback_method) == ("http://127.0.0.1:9/events", "GET")
    assert isinstance(created.date_created, datetime)
    assert created.date_completed is None and created.date_deleted is None
    assert created.url == f"{emulator.url}/v1/Compositions/{created.sid}"
    assert created.links == {"media": f"{created.url}/Media"}

    fetched = twilio_client.video.v1.compositions(created.sid).fetch()
    assert fetched.sid == created.sid
    raw = twilio_client.request("GET", f"https://video.twilio.com/v1/Compositions/{created.sid}")
    assert set(json.loads(raw.text)) == COMPOSITION_FIELDS

    listed = twilio_client.video.v1.compositions.list(room_sid=room_sid)
    assert [c.sid for c in listed] == [created.sid]

    assert twilio_client.video.v1.compositions(created.sid).delete() is True
    deleted = twilio_client.video.v1.compositions(created.sid).fetch()
    assert deleted.status == "deleted"
    assert isinstance(deleted.date_deleted, datetime)
    with pytest.raises(TwilioRestException) as error:
        twilio_client.video.v1.compositions(created.sid).delete()
    assert (error.value.status, error.value.code) == (404, 20404)
    assert [c.sid for c in twilio_client.video.v1.compositions.list(status="deleted")] == [created.sid]


def test_defaults(twilio_client: Client, join_participant: Any, emulator_control: Any) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="defaults")
    created = twilio_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["*"])
    assert (created.resolution, created.format, created.trim) == ("640x480", "mp4", True)
    assert created.video_layout == {}
    assert created.audio_sources_excluded == []
    assert created.status_callback is None
    assert (created.size, created.duration, created.bitrate) == (0, 0, 0)


async def test_async_client_operations(
    async_twilio_client: Client, emulator: Any, emulator_control: Any, join_participant: Any
) -> None:
    room = await async_twilio_client.video.v1.rooms.create_async(
        unique_name="async-room", type="group", record_participants_on_connect=True
    )
    created = await async_twilio_client.video.v1.compositions.create_async(
        room_sid=room.sid, video_layout=GRID_LAYOUT
    )
    fetched = await async_twilio_client.video.v1.compositions(created.sid).fetch_async()
    assert fetched.status == "enqueued"
    listed = await async_twilio_client.video.v1.compositions.list_async(status="enqueued")
    assert [c.sid for c in listed] == [created.sid]
    assert await async_twilio_client.video.v1.compositions(created.sid).delete_async() is True
    with pytest.raises(TwilioRestException) as error:
        await async_twilio_client.video.v1.compositions("CJ" + "0" * 32).fetch_async()
    assert (error.value.status, error.value.code) == (404, 20404)


def test_api_key_can_manage_compositions(
    key_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    room_sid = recorded_room(key_client, join_participant, emulator_control, name="keyed")
    created = key_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["*"])
    assert key_client.video.v1.compositions(created.sid).fetch().sid == created.sid


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"audio_sources": ["*"]}, 20001),  # RoomSid missing (filled in below as None)
        ({"room_sid": "not-a-room", "audio_sources": ["*"]}, 20001),
        ({"room_sid": "RM" + "0" * 32, "audio_sources": ["*"]}, 53106),
        ({"room_sid": "ROOM"}, 20001),  # neither VideoLayout nor AudioSources
        ({"room_sid": "ROOM", "audio_sources": ["*"], "resolution": "15x480"}, 20001),
        ({"room_sid": "ROOM", "audio_sources": ["*"], "resolution": "1281x720"}, 20001),
        ({"room_sid": "ROOM", "audio_sources": ["*"], "resolution": "1280x1280"}, 20001),
        ({"room_sid": "ROOM", "audio_sources": ["*"], "resolution": "wide"}, 20001),
        ({"room_sid": "ROOM", "audio_sources": ["*"], "format": "avi"}, 20001),
        ({"room_sid": "ROOM", "video_layout": ["not", "an", "object"]}, 20001),
        ({"room_sid": "ROOM", "video_layout": {"grid": {"max_rows": 2}}}, 20001),
        ({"room_sid": "ROOM", "audio_sources": ["*"], "status_callback": "ftp://x"}, 20001),
        ({"room_sid": "ROOM", "audio_sources": ["*"], "status_callback_method": "PUT"}, 20001),
        ({"room_sid": "ROOM", "audio_sources": ["*"], "trim": "maybe"}, 20001),
    ],
)
def test_invalid_requests(twilio_client: Client, arguments: dict[str, Any], code: int) -> None:
    room = twilio_client.video.v1.rooms.create(type="group")
    if arguments.get("room_sid") == "ROOM":
        arguments = {**arguments, "room_sid": room.sid}
    arguments.setdefault("room_sid", None)
    with pytest.raises(TwilioRestException) as error:
        twilio_client.video.v1.compositions.create(**arguments)
    assert (error.value.status, error.value.code) == (400, code)
    assert twilio_client.video.v1.compositions.list() == []


def test_only_group_rooms_can_be_composed(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create(type="peer-to-peer")
    with pytest.raises(TwilioRestException) as error:
        twilio_client.video.v1.compositions.create(room_sid=room.sid, audio_sources=["*"])
    assert (error.value.status, error.value.code) == (400, 20001)
    small = twilio_client.video.v1.rooms.create(type="group-small")
    assert (
        twilio_client.video.v1.compositions.create(room_sid=small.sid, audio_sources=["*"]).status
        == "enqueued"
    )


def test_list_filters_and_pagination(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    first_room = recorded_room(twilio_client, join_participant, emulator_control, name="first")
    second_room = twilio_client.video.v1.rooms.create(type="group").sid
    sids = [
        twilio_client.video.v1.compositions.create(room_sid=first_room, audio_sources=["*"]).sid
        for _ in range(3)
    ]
    advance(emulator_control, 10)
    later = twilio_client.video.v1.compositions.create(room_sid=second_room, audio_sources=["*"]).sid
    compositions = twilio_client.video.v1.compositions

    assert [c.sid for c in compositions.list()] == [later, *reversed(sids)]  # newest first
    assert [c.sid for c in compositions.list(page_size=2)] == [later, *reversed(sids)]
    page = compositions.page(page_size=2)
    assert len(list(page)) == 2
    assert page.next_page_url is not None and "PageToken=" in page.next_page_url
    assert [c.sid for c in compositions.list(room_sid=second_room)] == [later]
    assert {c.sid for c in compositions.list(room_sid=first_room)} == set(sids)
    assert compositions.list(status="completed") == []
    created_later = compositions(later).fetch().date_created
    assert [c.sid for c in compositions.list(date_created_after=created_later)] == [later]
    before = created_later - timedelta(seconds=5)
    assert {c.sid for c in compositions.list(date_created_before=before)} == set(sids)
    assert compositions.list(date_created_after=datetime.now(UTC) + timedelta(days=1)) == []

    with pytest.raises(TwilioException) as error:
        compositions.list(page_size=101)
    assert error.value.args[1].status_code == 400


def test_lifecycle_callbacks_are_signed_and_complete(
    twilio_client: Client,
    join_participant: Any,
    emulator_control: Any,
    emulator: Any,
    callback_receiver: CallbackReceiver,
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="lifecycle", seconds=20)
    url = callback_receiver.url("/composition-events?tenant=a")
    created = twilio_client.video.v1.compositions.create(
        room_sid=room_sid, audio_sources=["*"], video_layout=GRID_LAYOUT, status_callback=url
    )
    advance(emulator_control, 5)
    assert twilio_client.video.v1.compositions(created.sid).fetch().status == "enqueued"
    assert callback_receiver.events() == []  # composition-enqueued is only sent for hook compositions

    complete_room(twilio_client, room_sid)
    wait_for_status(twilio_client, created.sid, ("processing",))
    callback_receiver.wait_for("composition-started", created.sid)
    advance(emulator_control, 3600)
    done = wait_for_status(twilio_client, created.sid, ("completed",))
    available = callback_receiver.wait_for("composition-available", created.sid)

    progress = [int(r.params["PercentageDone"]) for r in callback_receiver.of("composition-progress")]
    assert progress == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    remaining = [int(r.params["SecondsRemaining"]) for r in callback_receiver.of("composition-progress")]
    assert remaining == sorted(remaining, reverse=True)
    assert callback_receiver.events(created.sid) == [
        "composition-started",
        *["composition-progress"] * 9,
        "composition-available",
    ]
    for request in callback_receiver.requests:
        assert request.method == "POST"
        assert request.url == url
        assert set(request.params) >= COMPOSITION_PARAMS
        assert request.params["CompositionUri"] == f"/v1/Compositions/{created.sid}"
        assert request.params["RoomSid"] == room_sid
        assert request.params["AccountSid"] == emulator.credentials["account_sid"]
        assert re.match(TIMESTAMP_PATTERN, request.params["Timestamp"])
    assert set(available.params) == COMPOSITION_PARAMS | {
        "MediaUri",
        "Duration",
        "Size",
        "MediaExternalLocation",
    }
    assert available.params["MediaUri"] == f"/v1/Compositions/{created.sid}/Media"
    assert int(available.params["Size"]) == done.size > 0
    assert int(available.params["Duration"]) == done.duration == 25  # recorded until the room ended
    assert done.bitrate == round(done.size * 8 / done.duration / 1000)
    assert isinstance(done.date_completed, datetime)
    callback_receiver.assert_signed(emulator.credentials["auth_token"])


def test_get_callbacks_are_signed_over_the_full_url(
    twilio_client: Client,
    join_participant: Any,
    emulator_control: Any,
    emulator: Any,
    callback_receiver: CallbackReceiver,
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="get-callbacks")
    created = twilio_client.video.v1.compositions.create(
        room_sid=room_sid,
        audio_sources=["*"],
        status_callback=callback_receiver.url("/hook"),
        status_callback_method="GET",
    )
    complete_room(twilio_client, room_sid)
    advance(emulator_control, 600)
    wait_for_status(twilio_client, created.sid, ("completed",))
    callback_receiver.wait_for("composition-available", created.sid)
    assert {r.method for r in callback_receiver.requests} == {"GET"}
    callback_receiver.assert_signed(emulator.credentials["auth_token"])


def test_composition_for_a_completed_room_starts_right_away(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="already-done")
    complete_room(twilio_client, room_sid)
    created = twilio_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["*"])
    assert created.status == "enqueued"
    wait_for_status(twilio_client, created.sid, ("processing",))
    advance(emulator_control, 600)
    done = wait_for_status(twilio_client, created.sid, ("completed",))
    assert done.duration == 20


def test_room_without_recordings_fails(
    twilio_client: Client,
    join_participant: Any,
    emulator_control: Any,
    emulator: Any,
    callback_receiver: CallbackReceiver,
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="silent", record=False)
    created = twilio_client.video.v1.compositions.create(
        room_sid=room_sid, audio_sources=["*"], status_callback=callback_receiver.url()
    )
    complete_room(twilio_client, room_sid)
    failed = wait_for_status(twilio_client, created.sid, ("failed", "completed"))
    assert failed.status == "failed"
    request = callback_receiver.wait_for("composition-failed", created.sid)
    assert set(request.params) == COMPOSITION_PARAMS | {"FailedOperation", "ErrorMessage"}
    assert request.params["ErrorMessage"]
    callback_receiver.assert_signed(emulator.credentials["auth_token"])


def test_sources_that_match_no_recording_fail(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="mismatch")
    audio = twilio_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["nobody*"])
    video = twilio_client.video.v1.compositions.create(
        room_sid=room_sid,
        video_layout={"main": {"video_sources": ["*"], "video_sources_excluded": ["video"]}},
    )
    matching = twilio_client.video.v1.compositions.create(
        room_sid=room_sid, audio_sources=["*"], audio_sources_excluded=["nothing"]
    )
    complete_room(twilio_client, room_sid)
    assert wait_for_status(twilio_client, audio.sid, ("failed", "completed")).status == "failed"
    assert wait_for_status(twilio_client, video.sid, ("failed", "completed")).status == "failed"
    advance(emulator_control, 600)
    assert wait_for_status(twilio_client, matching.sid, ("failed", "completed")).status == "completed"


def test_trim_false_spans_the_whole_room(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    room = twilio_client.video.v1.rooms.create(
        unique_name="late", type="group", record_participants_on_connect=True
    )
    advance(emulator_control, 30)  # nobody there yet
    join_participant("late", "alice")
    advance(emulator_control, 10)
    trimmed = twilio_client.video.v1.compositions.create(room_sid=room.sid, audio_sources=["*"])
    untrimmed = twilio_client.video.v1.compositions.create(room_sid=room.sid, audio_sources=["*"], trim=False)
    complete_room(twilio_client, room.sid)
    advance(emulator_control, 600)
    assert wait_for_status(twilio_client, trimmed.sid, ("completed",)).duration == 10
    assert wait_for_status(twilio_client, untrimmed.sid, ("completed",)).duration == 40


def test_forced_failure_and_long_processing(
    twilio_client: Client,
    join_participant: Any,
    emulator_control: Any,
    callback_receiver: CallbackReceiver,
) -> None:
    answer = emulator_control("POST", "compositions/config", {"processingSeconds": 7200})
    assert answer.status == 200 and answer.body["processingSeconds"] == 7200
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="stuck")
    created = twilio_client.video.v1.compositions.create(
        room_sid=room_sid, audio_sources=["*"], status_callback=callback_receiver.url()
    )
    complete_room(twilio_client, room_sid)
    wait_for_status(twilio_client, created.sid, ("processing",))
    advance(emulator_control, 3600)
    assert twilio_client.video.v1.compositions(created.sid).fetch().status == "processing"
    callback_receiver.wait_for("composition-progress", created.sid)

    answer = emulator_control("POST", f"compositions/{created.sid}/fail", {"errorMessage": "disk on fire"})
    assert answer.status == 200 and answer.body["status"] == "failed"
    assert twilio_client.video.v1.compositions(created.sid).fetch().status == "failed"
    failed = callback_receiver.wait_for("composition-failed", created.sid)
    assert failed.params["ErrorMessage"] == "disk on fire"
    advance(emulator_control, 7200)
    assert twilio_client.video.v1.compositions(created.sid).fetch().status == "failed"
    assert "composition-available" not in callback_receiver.events()

    again = emulator_control("POST", f"compositions/{created.sid}/fail", {})
    assert again.status == 409 and again.body["code"] == 20409
    unknown = emulator_control("POST", "compositions/CJ" + "0" * 32 + "/fail", {})
    assert unknown.status == 404 and unknown.body["code"] == 20404


def test_deleting_a_processing_composition_stops_it(
    twilio_client: Client,
    join_participant: Any,
    emulator_control: Any,
    callback_receiver: CallbackReceiver,
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="cancel")
    created = twilio_client.video.v1.compositions.create(
        room_sid=room_sid, audio_sources=["*"], status_callback=callback_receiver.url()
    )
    complete_room(twilio_client, room_sid)
    wait_for_status(twilio_client, created.sid, ("processing",))
    twilio_client.video.v1.compositions(created.sid).delete()
    advance(emulator_control, 600)
    assert twilio_client.video.v1.compositions(created.sid).fetch().status == "deleted"
    assert "composition-available" not in callback_receiver.events()


def test_config_control_validates(emulator_control: Any) -> None:
    assert emulator_control("GET", "compositions/config").body["processingSeconds"] is None
    answer = emulator_control(
        "POST", "config", {"compositionMediaBytes": 1234, "compositionProcessingSeconds": 2}
    )
    assert answer.status == 200
    assert (answer.body["mediaBytes"], answer.body["processingSeconds"]) == (1234, 2)
    assert emulator_control("POST", "compositions/config", {"bogus": 1}).status == 400
    assert emulator_control("POST", "compositions/config", {"mediaBytes": -1}).status == 400
    assert emulator_control("POST", "compositions/config", {"mediaBytes": "big"}).status == 400
    assert emulator_control("POST", "compositions/config", {"mediaBytes": None}).body["mediaBytes"] is None
