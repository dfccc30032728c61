"""Fault ``rateLostResponse``: the emulator applies a mutating request, then the client sees a 5xx or a
dropped connection instead of the answer. The work is there afterwards; only the answer was lost."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from test_compositions_support import recorded_room
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

LostAnswer = type[BaseException] | tuple[type[BaseException], ...]
# What the synchronous twilio client raises for each form of a lost answer.
RAISED: dict[str, LostAnswer] = {"5xx": TwilioRestException, "drop": requests.ConnectionError}
MODES = tuple(RAISED)


def lose_everything(emulator_control: Any, mode: str) -> None:
    answer = emulator_control("POST", "faults", {"rateLostResponse": 1, "lostResponseMode": mode})
    assert answer.status == 200, answer.body


def clear_faults(emulator_control: Any) -> None:
    assert emulator_control("POST", "faults", {}).status == 200


def assert_lost(mode: str, call: Callable[[], Any]) -> None:
    """``call`` fails the way ``mode`` says: a 500/503 with Twilio's error JSON, or no answer at all."""
    with pytest.raises(RAISED[mode]) as caught:
        call()
    if isinstance(caught.value, TwilioRestException):
        assert (caught.value.status, caught.value.code) in ((500, 20500), (503, 20503))


def lost_counts(emulator_control: Any) -> dict[str, dict[str, int]]:
    body = emulator_control("GET", "requests").body
    assert body["lostResponsesTotal"] == sum(sum(s.values()) for s in body["lostResponses"].values())
    return dict(body["lostResponses"])


@pytest.mark.parametrize("mode", MODES)
def test_room_is_created_and_completed_although_the_answers_are_lost(
    twilio_client: Client, emulator_control: Any, mode: str
) -> None:
    lose_everything(emulator_control, mode)
    assert_lost(mode, lambda: twilio_client.video.v1.rooms.create(unique_name="lost-create"))
    rooms = twilio_client.video.v1.rooms.list(unique_name="lost-create")  # reads are answered
    assert [room.status for room in rooms] == ["in-progress"]

    assert_lost(mode, lambda: twilio_client.video.v1.rooms(rooms[0].sid).update(status="completed"))
    assert twilio_client.video.v1.rooms(rooms[0].sid).fetch().status == "completed"
    # Twilio refused it (the room already ended): nothing was applied, so the answer arrives.
    with pytest.raises(TwilioRestException) as caught:
        twilio_client.video.v1.rooms(rooms[0].sid).update(status="completed")
    assert (caught.value.status, caught.value.code) == (400, 53118)
    assert lost_counts(emulator_control) == {"CreateRoom": {"201": 1}, "UpdateRoom": {"202": 1}}


@pytest.mark.parametrize("mode", MODES)
def test_composition_is_created_although_the_answer_is_lost(
    twilio_client: Client, join_participant: Any, emulator_control: Any, mode: str
) -> None:
    room_sid = recorded_room(twilio_client, join_participant, emulator_control, name="lost-composition")
    lose_everything(emulator_control, mode)
    assert_lost(
        mode, lambda: twilio_client.video.v1.compositions.create(room_sid=room_sid, audio_sources=["*"])
    )
    clear_faults(emulator_control)
    listed = twilio_client.video.v1.compositions.list(room_sid=room_sid)
    assert len(listed) == 1 and listed[0].status in ("enqueued", "processing")
    assert lost_counts(emulator_control) == {"CreateComposition": {"201": 1}}


@pytest.mark.parametrize("mode", MODES)
def test_key_is_created_and_deleted_although_the_answers_are_lost(
    twilio_client: Client, emulator_control: Any, mode: str
) -> None:
    lose_everything(emulator_control, mode)
    assert_lost(mode, lambda: twilio_client.new_keys.create(friendly_name="lost-key"))
    created = [key for key in twilio_client.keys.list() if key.friendly_name == "lost-key"]
    assert len(created) == 1  # live at Twilio, its secret never seen by the client

    assert_lost(mode, lambda: twilio_client.keys(created[0].sid).delete())
    assert all(key.sid != created[0].sid for key in twilio_client.keys.list())
    clear_faults(emulator_control)
    assert lost_counts(emulator_control) == {"CreateNewKey": {"201": 1}, "DeleteKey": {"204": 1}}


def test_recent_requests_name_the_lost_status(
    twilio_client: Client, emulator_control: Any, emulator: Any
) -> None:
    lose_everything(emulator_control, "drop")
    with pytest.raises(requests.ConnectionError):
        twilio_client.video.v1.rooms.create(unique_name="recent")
    recent = emulator_control("GET", "requests").body["recent"]
    assert [(r["operation"], r["status"], r.get("lostStatus")) for r in recent] == [
        ("CreateRoom", "dropped", "201")
    ]
    assert emulator_control("DELETE", "requests").status == 204
    body = emulator_control("GET", "requests").body
    assert (body["lostResponses"], body["lostResponsesTotal"]) == ({}, 0)
    assert "recent" in {room.unique_name for room in emulator.state.rooms.values()}


def test_mixed_mode_is_seeded_and_loses_both_ways(twilio_client: Client, emulator_control: Any) -> None:
    def outcomes(seed: int, run: int) -> list[str]:
        settings = {"rateLostResponse": 0.5, "seed": seed}
        assert emulator_control("POST", "faults", settings).body["lostResponseMode"] == "mixed"
        seen = []
        for index in range(16):
            try:
                twilio_client.video.v1.rooms.create(unique_name=f"mixed-{run}-{index}")
            except TwilioRestException:
                seen.append("5xx")
            except requests.ConnectionError:
                seen.append("drop")
            else:
                seen.append("ok")
        return seen

    first = outcomes(5, run=1)
    assert set(first) == {"ok", "5xx", "drop"}
    assert outcomes(5, run=2) == first  # the same seed repeats the same fates
    clear_faults(emulator_control)
    # Every create was applied, whatever its answer.
    names = {room.unique_name for room in twilio_client.video.v1.rooms.list()}
    assert names == {f"mixed-{run}-{index}" for run in (1, 2) for index in range(16)}


def test_reads_and_refusals_keep_their_answers(twilio_client: Client, emulator_control: Any) -> None:
    lose_everything(emulator_control, "5xx")
    assert twilio_client.video.v1.rooms.list() == []
    with pytest.raises(TwilioRestException) as caught:
        twilio_client.video.v1.rooms.create(type="bogus")
    assert (caught.value.status, caught.value.code) == (400, 53108)
    assert lost_counts(emulator_control) == {}


def test_settings_are_validated_and_shown(emulator_control: Any) -> None:
    shown = emulator_control("GET", "faults").body
    assert (shown["rateLostResponse"], shown["lostResponseMode"]) == (0, "mixed")
    answer = emulator_control("POST", "faults", {"rateLostResponse": 0.3, "lostResponseMode": "drop"})
    assert answer.status == 200
    assert emulator_control("GET", "faults").body["rateLostResponse"] == 0.3
    for bad in ({"rateLostResponse": 1.5}, {"rateLostResponse": True}, {"lostResponseMode": "sometimes"}):
        refused = emulator_control("POST", "faults", bad)
        assert refused.status == 400 and refused.body["code"] == 20001, bad
    assert emulator_control("POST", "faults", {}).body["rateLostResponse"] == 0
