"""Access Tokens minted by twilio's AccessToken are verified when a simulated participant joins."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant, VideoGrant
from twilio.rest import Client


@pytest.fixture
def room(twilio_client: Client) -> str:
    return str(twilio_client.video.v1.rooms.create(unique_name="guarded").sid)


def join(emulator_control: Any, identity: str, token: str, room: str = "guarded") -> Any:
    return emulator_control("POST", f"rooms/{room}/participants", {"identity": identity, "token": token})


def refused(answer: Any, code: int) -> bool:
    return bool(answer.status == 401 and answer.body["code"] == code and answer.body["status"] == 401)


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_valid_tokens_are_accepted(room: str, emulator_control: Any, access_token: Any) -> None:
    answer = join(emulator_control, "alice", access_token("alice", "guarded"))
    assert answer.status == 201 and answer.body["identity"] == "alice" and answer.body["sid"].startswith("PA")
    by_sid = join(emulator_control, "bob", access_token("bob", room), room=room)
    assert by_sid.status == 201
    any_room = join(emulator_control, "carol", access_token("carol"))
    assert any_room.status == 201


def test_tampered_signature(room: str, emulator_control: Any, access_token: Any) -> None:
    header, payload, signature = access_token("alice", "guarded").split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert refused(join(emulator_control, "alice", f"{header}.{payload}.{flipped}"), 20107)
    other_payload = _segment(
        {
            **json.loads(base64.urlsafe_b64decode(payload + "==")),
            "grants": {"identity": "mallory", "video": {"room": "guarded"}},
        }
    )
    assert refused(join(emulator_control, "mallory", f"{header}.{other_payload}.{signature}"), 20107)


def test_wrong_secret_is_a_bad_signature(room: str, emulator_control: Any, access_token: Any) -> None:
    assert refused(join(emulator_control, "alice", access_token("alice", "guarded", secret="x" * 32)), 20107)


def test_expired_token(room: str, emulator_control: Any, access_token: Any) -> None:
    token = access_token("alice", "guarded", ttl=60)
    emulator_control("POST", "clock/advance", {"seconds": 61})
    assert refused(join(emulator_control, "alice", token), 20104)


def test_token_valid_for_more_than_a_day(room: str, emulator_control: Any, access_token: Any) -> None:
    assert refused(join(emulator_control, "alice", access_token("alice", "guarded", ttl=90000)), 20104)


def test_not_yet_valid_token(room: str, emulator_control: Any, emulator: Any) -> None:
    credentials = emulator.credentials
    token = AccessToken(
        credentials["account_sid"],
        credentials["api_key"],
        credentials["api_secret"],
        identity="alice",
        nbf=int(time.time()) + 600,
    )
    token.add_grant(VideoGrant(room="guarded"))
    assert refused(join(emulator_control, "alice", token.to_jwt()), 20105)


def test_wrong_room_or_identity(room: str, emulator_control: Any, access_token: Any) -> None:
    assert refused(join(emulator_control, "alice", access_token("alice", "another-room")), 20106)
    assert refused(join(emulator_control, "bob", access_token("alice", "guarded")), 20106)


def test_token_without_video_grant(room: str, emulator_control: Any, emulator: Any) -> None:
    credentials = emulator.credentials
    token = AccessToken(
        credentials["account_sid"], credentials["api_key"], credentials["api_secret"], identity="alice"
    )
    token.add_grant(ChatGrant(service_sid="IS" + "0" * 32))
    assert refused(join(emulator_control, "alice", token.to_jwt()), 20106)


def test_revoked_or_unknown_key(
    room: str, twilio_client: Client, emulator_control: Any, access_token: Any
) -> None:
    key = twilio_client.new_keys.create(friendly_name="short-lived")
    token = access_token("alice", "guarded", key_sid=key.sid, secret=key.secret)
    twilio_client.keys(key.sid).delete()
    assert refused(join(emulator_control, "alice", token), 20103)
    stranger = access_token("alice", "guarded", key_sid="SK" + "0" * 32, secret="y" * 32)
    assert refused(join(emulator_control, "alice", stranger), 20103)


def test_wrong_account(room: str, emulator_control: Any, emulator: Any) -> None:
    credentials = emulator.credentials
    token = AccessToken("AC" + "1" * 32, credentials["api_key"], credentials["api_secret"], identity="alice")
    token.add_grant(VideoGrant(room="guarded"))
    assert refused(join(emulator_control, "alice", token.to_jwt()), 20103)


def test_bad_header_and_garbage(room: str, emulator_control: Any, access_token: Any) -> None:
    _, payload, signature = access_token("alice", "guarded").split(".")
    plain_header = _segment({"alg": "HS256", "typ": "JWT"})
    assert refused(join(emulator_control, "alice", f"{plain_header}.{payload}.{signature}"), 20102)
    assert refused(join(emulator_control, "alice", "not-a-jwt"), 20101)
    assert refused(join(emulator_control, "alice", "a.b.c"), 20101)
    missing = emulator_control("POST", "rooms/guarded/participants", {"identity": "alice"})
    assert refused(missing, 20101)
