"""Participants, tracks, subscribe rules and recordings through the real twilio client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client


def rest_error(call: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        call()
    return caught.value


def test_list_and_fetch_participants(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="team")
    alice = join_participant("team", "alice")
    bob = join_participant("team", "bob")
    participants = twilio_client.video.v1.rooms(room.sid).participants
    assert [p.identity for p in participants.list()] == ["bob", "alice"]
    assert [p.sid for p in participants.list(identity="alice")] == [alice]
    assert participants("alice").fetch().sid == alice
    fetched = participants(bob).fetch()
    assert fetched.status == "connected" and fetched.room_sid == room.sid and fetched.end_time is None
    emulator_control("POST", "clock/advance", {"seconds": 30})
    emulator_control("DELETE", f"rooms/team/participants/{bob}")
    assert [p.sid for p in participants.list()] == [alice]  # in-progress room: connected by default
    gone = participants.list(status="disconnected")
    assert [p.sid for p in gone] == [bob] and gone[0].duration == 30
    twilio_client.video.v1.rooms(room.sid).update(status="completed")
    assert {p.sid for p in participants.list()} == {alice, bob}  # completed room: disconnected by default
    missing = rest_error(lambda: participants("carol").fetch())
    assert (missing.status, missing.code) == (404, 20404)


def test_disconnect_participant(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="kick")
    alice = join_participant("kick", "alice")
    participant = twilio_client.video.v1.rooms(room.sid).participants(alice)
    wrong = rest_error(lambda: participant.update(status="connected"))
    assert (wrong.status, wrong.code) == (400, 53209)
    response = participant.update_with_http_info(status="disconnected")
    assert response.status_code == 202 and response.data.status == "disconnected"
    assert response.data.end_time is not None and response.data.duration == 0


def test_anonymize(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="anon")
    alice = join_participant("anon", "alice")
    anonymized = twilio_client.video.v1.rooms(room.sid).participants(alice).anonymize().update()
    assert anonymized.identity == alice and anonymized.sid == alice


def test_published_and_subscribed_tracks(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="tracks")
    alice = join_participant("tracks", "alice")
    bob = join_participant("tracks", "bob", tracks=[{"name": "mic", "kind": "audio"}])
    participants = twilio_client.video.v1.rooms(room.sid).participants
    published = participants(alice).published_tracks.list()
    assert sorted((t.name, t.kind, t.enabled) for t in published) == [
        ("audio", "audio", True),
        ("video", "video", True),
    ]
    by_name = participants(alice).published_tracks("video").fetch()
    assert (
        by_name.kind == "video" and participants(alice).published_tracks(by_name.sid).fetch().name == "video"
    )
    subscribed = participants(bob).subscribed_tracks.list()
    assert {t.sid for t in subscribed} == {t.sid for t in published}
    assert all(t.publisher_sid == alice and t.participant_sid == bob for t in subscribed)
    one = participants(bob).subscribed_tracks(subscribed[0].sid).fetch()
    assert one.sid == subscribed[0].sid
    assert [t.name for t in participants(alice).subscribed_tracks.list()] == ["mic"]
    missing = rest_error(lambda: participants(alice).published_tracks("screen").fetch())
    assert missing.status == 404


def test_subscribe_rules(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="subs")
    join_participant("subs", "alice")
    bob = join_participant("subs", "bob")
    rules = twilio_client.video.v1.rooms(room.sid).participants(bob).subscribe_rules
    initial = rules.fetch()
    assert initial.rules[0]["type"] == "include" and initial.rules[0]["all"] is True
    updated = rules.update(rules=[{"type": "exclude", "all": True}, {"type": "include", "kind": "audio"}])
    assert [r["type"] for r in updated.rules] == ["exclude", "include"]
    subscribed = twilio_client.video.v1.rooms(room.sid).participants(bob).subscribed_tracks.list()
    assert [t.kind for t in subscribed] == ["audio"]
    error = rest_error(lambda: rules.update(rules=[{"type": "maybe"}]))
    assert error.status == 400


def test_audio_only_rooms_get_audio_tracks_only(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="radio", audio_only=True)
    alice = join_participant("radio", "alice")
    tracks = twilio_client.video.v1.rooms(room.sid).participants(alice).published_tracks.list()
    assert [t.kind for t in tracks] == ["audio"]


def test_duplicate_identity_replaces_the_old_participant(
    twilio_client: Client, join_participant: Any
) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="dup")
    first = join_participant("dup", "alice")
    second = join_participant("dup", "alice")
    participants = twilio_client.video.v1.rooms(room.sid).participants
    assert participants(first).fetch().status == "disconnected"
    assert participants("alice").fetch().sid == second


def test_full_room_refuses_joins(twilio_client: Client, emulator_control: Any, access_token: Any) -> None:
    twilio_client.video.v1.rooms.create(unique_name="small", max_participants=1)
    join = {"identity": "alice", "token": access_token("alice", "small")}
    assert emulator_control("POST", "rooms/small/participants", join).status == 201
    answer = emulator_control(
        "POST", "rooms/small/participants", {"identity": "bob", "token": access_token("bob")}
    )
    assert answer.status == 400 and answer.body["code"] == 53105


def test_join_needs_an_in_progress_room(
    twilio_client: Client, emulator_control: Any, access_token: Any
) -> None:
    answer = emulator_control(
        "POST", "rooms/nowhere/participants", {"identity": "a", "token": access_token("a")}
    )
    assert answer.status == 404
    room = twilio_client.video.v1.rooms.create()
    twilio_client.video.v1.rooms(room.sid).update(status="completed")
    late = emulator_control(
        "POST", f"rooms/{room.sid}/participants", {"identity": "a", "token": access_token("a")}
    )
    assert late.status == 404


def test_max_participant_duration_disconnects(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="short", max_participant_duration=600)
    alice = join_participant("short", "alice")
    emulator_control("POST", "clock/advance", {"seconds": 599})
    assert twilio_client.video.v1.rooms(room.sid).participants(alice).fetch().status == "connected"
    emulator_control("POST", "clock/advance", {"seconds": 2})
    participant = twilio_client.video.v1.rooms(room.sid).participants(alice).fetch()
    assert participant.status == "disconnected" and participant.duration == 600


def test_track_control(twilio_client: Client, join_participant: Any, emulator_control: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="ctl")
    alice = join_participant("ctl", "alice", tracks=[])
    tracks = twilio_client.video.v1.rooms(room.sid).participants(alice).published_tracks
    assert tracks.list() == []
    added = emulator_control(
        "POST", f"rooms/ctl/participants/{alice}/tracks", {"name": "screen", "kind": "video"}
    )
    assert added.status == 201
    duplicate = emulator_control(
        "POST", "rooms/ctl/participants/alice/tracks", {"name": "screen", "kind": "video"}
    )
    assert duplicate.status == 400 and duplicate.body["code"] == 53304
    emulator_control("POST", "rooms/ctl/participants/alice/tracks/screen", {"enabled": False})
    assert tracks("screen").fetch().enabled is False
    assert emulator_control("DELETE", "rooms/ctl/participants/alice/tracks/screen").status == 204
    assert tracks.list() == []


def test_recordings_follow_the_room(
    twilio_client: Client, join_participant: Any, emulator_control: Any
) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="rec", record_participants_on_connect=True)
    alice = join_participant("rec", "alice")
    recordings = twilio_client.video.v1.rooms(room.sid).recordings
    live = recordings.list()
    assert sorted(r.type for r in live) == ["audio", "video"]
    assert all(r.status == "processing" and r.grouping_sids["participant_sid"] == alice for r in live)
    emulator_control("POST", "clock/advance", {"seconds": 42})
    twilio_client.video.v1.rooms(room.sid).update(status="completed")
    done = recordings.list(status="completed")
    assert len(done) == 2 and all(r.duration == 42 and r.size > 0 for r in done)
    audio = next(r for r in done if r.type == "audio")
    assert (audio.container_format, audio.codec) == ("mka", "OPUS")
    assert recordings(audio.sid).fetch().source_sid == audio.source_sid
    assert [r.sid for r in recordings.list(source_sid=audio.source_sid)] == [audio.sid]


def test_recording_rules_select_tracks(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(
        unique_name="rules", recording_rules=[{"type": "include", "kind": "audio"}]
    )
    join_participant("rules", "alice")
    assert [r.type for r in twilio_client.video.v1.rooms(room.sid).recordings.list()] == ["audio"]
    twilio_client.video.v1.rooms(room.sid).recording_rules.update(rules=[{"type": "include", "all": True}])
    assert sorted(r.type for r in twilio_client.video.v1.rooms(room.sid).recordings.list()) == [
        "audio",
        "video",
    ]
    twilio_client.video.v1.rooms(room.sid).recording_rules.update(rules=[{"type": "exclude", "all": True}])
    statuses = sorted(r.status for r in twilio_client.video.v1.rooms(room.sid).recordings.list())
    assert statuses == ["completed", "completed"]


def test_top_level_recordings(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="top", record_participants_on_connect=True)
    alice = join_participant("top", "alice")
    twilio_client.video.v1.rooms(room.sid).update(status="completed")
    recordings = twilio_client.video.v1.recordings
    listed = recordings.list(page_size=1)
    assert len(listed) == 2
    assert len(recordings.list(grouping_sid=[room.sid, alice])) == 2
    assert len(recordings.list(grouping_sid=["RM" + "0" * 32])) == 0
    assert [r.type for r in recordings.list(media_type="video")] == ["video"]
    video = recordings(listed[0].sid).fetch()
    assert video.links["media"].endswith(f"/v1/Recordings/{video.sid}/Media")
    with pytest.raises(TwilioException) as caught:
        recordings.page(page_size=101)
    assert caught.value.args[1].status_code == 400
    assert recordings(video.sid).delete() is True
    assert rest_error(lambda: recordings(video.sid).fetch()).status == 404
    room_recording = twilio_client.video.v1.rooms(room.sid).recordings.list()[0]
    assert twilio_client.video.v1.rooms(room.sid).recordings(room_recording.sid).delete() is True
    assert twilio_client.video.v1.recordings.list() == []


def test_recording_media_redirects(twilio_client: Client, join_participant: Any) -> None:
    room = twilio_client.video.v1.rooms.create(unique_name="media", record_participants_on_connect=True)
    join_participant("media", "alice", tracks=[{"name": "mic", "kind": "audio"}])
    recording_sid = twilio_client.video.v1.rooms(room.sid).recordings.list()[0].sid
    processing = twilio_client.request("GET", f"https://video.twilio.com/v1/Recordings/{recording_sid}/Media")
    assert processing.status_code == 404
    twilio_client.video.v1.rooms(room.sid).update(status="completed")
    for path in (
        f"/v1/Recordings/{recording_sid}/Media",
        f"/v1/Rooms/{room.sid}/Recordings/{recording_sid}/Media",
    ):
        answer = twilio_client.request("GET", "https://video.twilio.com" + path)
        assert answer.status_code == 302
        target = json.loads(answer.text)["redirect_to"]
        assert "/_emulator/media/recordings/" in target
        with urllib.request.urlopen(target, timeout=5) as media:
            body = media.read()
            assert media.headers["Content-Type"] == "audio/x-matroska"
        assert body.startswith(bytes.fromhex("1a45dfa3")) and b"matroska" in body
    forged = target.replace("Signature=", "Signature=0")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=5)
    assert refused.value.code == 403


async def test_participants_with_the_async_client(async_twilio_client: Client, join_participant: Any) -> None:
    room = await async_twilio_client.video.v1.rooms.create_async(unique_name="async-p")
    alice = join_participant("async-p", "alice")
    participants = async_twilio_client.video.v1.rooms(room.sid).participants
    assert [p.sid for p in await participants.list_async()] == [alice]
    assert (await participants("alice").fetch_async()).sid == alice
    tracks = await participants(alice).published_tracks.list_async()
    assert len(tracks) == 2
    done = await participants(alice).update_async(status="disconnected")
    assert done.status == "disconnected"
