"""Rooms through the real twilio client: create (and its validation), fetch, list, update, rules, timeouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client


def rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


def test_create_room_with_defaults(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create()
    assert room.sid.startswith("RM") and len(room.sid) == 34
    assert room.status == "in-progress"
    assert room.unique_name == room.sid
    assert room.type == "group"
    assert room.video_codecs == ["VP8", "H264"]
    assert room.max_participants == 50
    assert room.max_participant_duration == 14400
    assert room.empty_room_timeout == 5 and room.unused_room_timeout == 5
    assert room.status_callback is None and room.status_callback_method == "POST"
    assert room.media_region == "us1" and room.enable_turn is True
    assert room.end_time is None and room.duration is None
    assert isinstance(room.date_created, datetime) and room.date_created.tzinfo is not None
    assert room.links["participants"] == f"{room.url}/Participants"


def test_create_room_with_every_parameter(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create(
        enable_turn=False,
        type="group-small",
        unique_name="standup",
        status_callback="https://hooks.example.com/room-events",
        status_callback_method="GET",
        max_participants=4,
        record_participants_on_connect=True,
        transcribe_participants_on_connect=True,
        video_codecs=["H264"],
        media_region="de1",
        recording_rules=[{"type": "include", "kind": "audio"}],
        transcriptions_configuration={"languageCode": "en-US"},
        audio_only=True,
        max_participant_duration=600,
        empty_room_timeout=1,
        unused_room_timeout=60,
        large_room=False,
    )
    assert (room.type, room.unique_name, room.max_participants) == ("group-small", "standup", 4)
    assert room.status_callback == "https://hooks.example.com/room-events"
    assert room.status_callback_method == "GET"
    assert room.record_participants_on_connect is True and room.audio_only is True
    assert room.video_codecs == ["H264"] and room.media_region == "de1"
    assert (room.max_participant_duration, room.empty_room_timeout, room.unused_room_timeout) == (600, 1, 60)
    assert room.enable_turn is False
    rules = twilio_client.video.v1.rooms(room.sid).recording_rules.fetch()
    assert rules.rules == [{"type": "include", "kind": "audio"}]


BAD_CREATES = [
    ({"type": "conference"}, 53108),
    ({"max_participants": 0}, 53107),
    ({"max_participants": 51}, 53107),
    ({"empty_room_timeout": 0}, 53109),
    ({"unused_room_timeout": 61}, 53109),
    ({"max_participant_duration": 599}, 53216),
    ({"max_participant_duration": 86401}, 53216),
    ({"status_callback_method": "PUT"}, 53110),
    ({"status_callback": "not a url"}, 53111),
    ({"recording_rules": []}, 53120),
    ({"recording_rules": [{"all": True}]}, 53120),
    ({"recording_rules": [{"type": "include", "all": False}]}, 53120),
    ({"recording_rules": [{"type": "include", "all": True, "kind": "audio"}]}, 53120),
    ({"recording_rules": [{"type": "include", "kind": "data"}]}, 53120),
    ({"recording_rules": [{"type": "exclude", "track": f"t{i}"} for i in range(21)]}, 53120),
    ({"type": "peer-to-peer", "audio_only": True}, 53124),
    ({"unique_name": "x" * 129}, 53101),
]


@pytest.mark.parametrize(("params", "code"), BAD_CREATES)
def test_create_room_validation(twilio_client: Client, params: dict[str, Any], code: int) -> None:
    error = rest_error(lambda: twilio_client.video.v1.rooms.create(**params))
    assert (error.status, error.code) == (400, code)


def test_unique_name_is_unique_among_in_progress_rooms(twilio_client: Client) -> None:
    first = twilio_client.video.v1.rooms.create(unique_name="daily")
    error = rest_error(lambda: twilio_client.video.v1.rooms.create(unique_name="daily"))
    assert (error.status, error.code) == (400, 53113)
    twilio_client.video.v1.rooms(first.sid).update(status="completed")
    second = twilio_client.video.v1.rooms.create(unique_name="daily")
    assert second.sid != first.sid
    assert twilio_client.video.v1.rooms("daily").fetch().sid == second.sid
    assert twilio_client.video.v1.rooms(first.sid).fetch().status == "completed"


def test_fetch_by_sid_or_in_progress_name(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="lobby")
    assert twilio_client.video.v1.rooms("lobby").fetch().sid == room.sid
    twilio_client.video.v1.rooms("lobby").update(status="completed")
    error = rest_error(lambda: twilio_client.video.v1.rooms("lobby").fetch())
    assert (error.status, error.code) == (404, 20404)
    missing = rest_error(lambda: twilio_client.video.v1.rooms("RM" + "0" * 32).fetch())
    assert (missing.status, missing.code) == (404, 20404)


def test_update_room(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create()
    wrong = rest_error(lambda: twilio_client.video.v1.rooms(room.sid).update(status="in-progress"))
    assert (wrong.status, wrong.code) == (400, 53112)
    done = twilio_client.video.v1.rooms(room.sid).update(status="completed")
    assert done.status == "completed" and done.end_time is not None and done.duration == 0
    again = rest_error(lambda: twilio_client.video.v1.rooms(room.sid).update(status="completed"))
    assert (again.status, again.code) == (400, 53118)
    response = twilio_client.video.v1.rooms.create_with_http_info()
    assert response.status_code == 201
    update = twilio_client.video.v1.rooms(response.data.sid).update_with_http_info(status="completed")
    assert update.status_code == 202


def test_list_rooms_filters(twilio_client: Client) -> None:
    rooms = twilio_client.video.v1.rooms
    done = rooms.create(unique_name="old")
    rooms(done.sid).update(status="completed")
    live = [rooms.create(unique_name=f"live-{i}") for i in range(3)]
    listed = rooms.list()
    assert [r.sid for r in listed] == [r.sid for r in reversed(live)]  # default: in-progress, newest first
    assert [r.sid for r in rooms.list(status="completed")] == [done.sid]
    assert [r.sid for r in rooms.list(unique_name="live-1")] == [live[1].sid]
    assert [r.sid for r in rooms.list(unique_name="old", status="completed")] == [done.sid]
    now = datetime.now(UTC)
    assert len(rooms.list(date_created_after=now - timedelta(hours=1))) == 3
    assert rooms.list(date_created_before=now - timedelta(hours=1)) == []
    assert len(rooms.list(date_created_before=now + timedelta(hours=1))) == 3


def test_list_rooms_paginates(twilio_client: Client) -> None:
    created = {twilio_client.video.v1.rooms.create().sid for _ in range(7)}
    listed = twilio_client.video.v1.rooms.list(page_size=3)
    assert {r.sid for r in listed} == created and len(listed) == 7
    page = twilio_client.video.v1.rooms.page(page_size=3)
    first_sids = [r.sid for r in page]
    assert len(first_sids) == 3 and page.next_page_url is not None
    second = page.next_page()
    second_sids = [r.sid for r in second]
    assert len(second_sids) == 3 and not set(first_sids) & set(second_sids)
    third = second.next_page()
    assert len(list(third)) == 1 and third.next_page_url is None
    assert len(twilio_client.video.v1.rooms.list(limit=5, page_size=2)) == 5


def test_list_rooms_rejects_bad_page_size(twilio_client: Client) -> None:
    with pytest.raises(TwilioException) as caught:
        twilio_client.video.v1.rooms.page(page_size=1001)
    assert caught.value.args[1].status_code == 400


def test_recording_rules(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create(record_participants_on_connect=True)
    rules = twilio_client.video.v1.rooms(room.sid).recording_rules
    assert rules.fetch().rules == [{"type": "include", "all": True}]
    updated = rules.update(rules=[{"type": "exclude", "all": True}])
    assert updated.rules == [{"type": "exclude", "all": True}] and updated.room_sid == room.sid
    error = rest_error(lambda: rules.update(rules=[{"type": "sometimes"}]))
    assert (error.status, error.code) == (400, 53120)


def test_transcriptions(twilio_client: Client) -> None:
    room = twilio_client.video.v1.rooms.create()
    transcriptions = twilio_client.video.v1.rooms(room.sid).transcriptions
    created = transcriptions.create_with_http_info(configuration={"LanguageCode": "en-US"})
    assert created.status_code == 202
    ttid = created.data.ttid
    assert created.data.status == "started" and created.data.configuration == {"LanguageCode": "en-US"}
    assert [t.ttid for t in transcriptions.list()] == [ttid]
    stopped = transcriptions(ttid).update_with_http_info(status="stopped")
    assert stopped.status_code == 202 and stopped.data.status == "stopped" and stopped.data.end_time
    assert transcriptions(ttid).fetch().status == "stopped"
    missing = rest_error(lambda: transcriptions("video_extension_missing").fetch())
    assert missing.status == 404


def test_unused_room_times_out(twilio_client: Client, emulator_control: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unused_room_timeout=2)
    emulator_control("POST", "clock/advance", {"seconds": 119})
    assert twilio_client.video.v1.rooms(room.sid).fetch().status == "in-progress"
    emulator_control("POST", "clock/advance", {"seconds": 2})
    ended = twilio_client.video.v1.rooms(room.sid).fetch()
    assert ended.status == "completed" and ended.duration == 120


def test_empty_room_times_out_after_last_participant_left(
    twilio_client: Client, emulator_control: Any, join_participant: Any
) -> None:
    room = twilio_client.video.v1.rooms.create(
        unique_name="empty", empty_room_timeout=1, unused_room_timeout=1
    )
    join_participant("empty", "alice")
    emulator_control("POST", "clock/advance", {"seconds": 600})  # occupied: neither timeout applies
    assert twilio_client.video.v1.rooms(room.sid).fetch().status == "in-progress"
    assert emulator_control("DELETE", "rooms/empty/participants/alice").status == 204
    emulator_control("POST", "clock/advance", {"seconds": 59})
    assert twilio_client.video.v1.rooms(room.sid).fetch().status == "in-progress"
    emulator_control("POST", "clock/advance", {"seconds": 2})
    assert twilio_client.video.v1.rooms(room.sid).fetch().status == "completed"


def test_failed_room(twilio_client: Client, emulator_control: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="doomed")
    answer = emulator_control("POST", "rooms/doomed/fail")
    assert answer.status == 200 and answer.body["status"] == "failed"
    assert [r.sid for r in twilio_client.video.v1.rooms.list(status="failed")] == [room.sid]
    error = rest_error(lambda: twilio_client.video.v1.rooms(room.sid).update(status="completed"))
    assert (error.status, error.code) == (400, 53118)


async def test_rooms_with_the_async_client(async_twilio_client: Client) -> None:
    rooms = async_twilio_client.video.v1.rooms
    room = await rooms.create_async(unique_name="async-room", max_participants=3)
    assert room.max_participants == 3
    assert (await rooms("async-room").fetch_async()).sid == room.sid
    for _ in range(4):
        await rooms.create_async()
    listed = await rooms.list_async(page_size=2)
    assert len(listed) == 5
    done = await rooms(room.sid).update_async(status="completed")
    assert done.status == "completed"
    with pytest.raises(TwilioRestException) as caught:
        await rooms.create_async(type="huge")
    assert (caught.value.status, caught.value.code) == (400, 53108)
    rules = await rooms(listed[0].sid).recording_rules.update_async(rules=[{"type": "include", "all": True}])
    assert rules.rules == [{"type": "include", "all": True}]
