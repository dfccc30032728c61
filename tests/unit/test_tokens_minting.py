"""Access Tokens minted by the operator are the twilio library's own, byte for byte."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt as pyjwt
import pytest
from pydantic import SecretStr
from twilio.jwt.access_token import AccessToken as TwilioAccessToken
from twilio.jwt.access_token.grants import VideoGrant

from twilio_video_operator.tokens.minting import MAX_TOKEN_TTL_SECONDS, SigningKey, mint_access_token

KEY = SigningKey("AC" + "1" * 32, "SK" + "2" * 32, SecretStr("s3cr3t-signing-key-value-0123456"))
NOW = 1_790_000_000


def twilio_token(monkeypatch: pytest.MonkeyPatch, identity: str, room: str, ttl: int) -> str:
    """What twilio-python 9.x produces for the same inputs at the same second."""
    import twilio.jwt
    import twilio.jwt.access_token

    monkeypatch.setattr(twilio.jwt.time, "time", lambda: NOW + 0.75)
    monkeypatch.setattr(twilio.jwt.access_token.time, "time", lambda: NOW + 0.75)
    token = TwilioAccessToken(
        KEY.account_sid, KEY.key_sid, KEY.secret.get_secret_value(), identity=identity, ttl=ttl
    )
    token.add_grant(VideoGrant(room=room))
    jwt: str = token.to_jwt()
    return jwt


def decode_segments(jwt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = jwt.split(".")
    pad = lambda part: part + "=" * (-len(part) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(
        base64.urlsafe_b64decode(pad(payload))
    )


@pytest.mark.parametrize(
    ("identity", "room"),
    [("alice", "tenant:standup"), ("Zoë ☕ <ops>", "ünïcode room / with spaces"), ("x" * 128, "r")],
)
def test_structure_and_bytes_equal_the_twilio_library(
    monkeypatch: pytest.MonkeyPatch, identity: str, room: str
) -> None:
    ours = mint_access_token(KEY, identity, room, ttl=600, now=NOW + 0.75)
    theirs = twilio_token(monkeypatch, identity, room, 600)

    assert decode_segments(ours.jwt) == decode_segments(theirs)
    assert list(decode_segments(ours.jwt)[1]) == list(decode_segments(theirs)[1])  # claim order too
    assert ours.jwt == theirs


def test_the_claims_follow_the_contract() -> None:
    token = mint_access_token(KEY, "alice", "tenant:standup", ttl=900, now=NOW)
    header, claims = decode_segments(token.jwt)

    assert header == {"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"}
    assert claims == {
        "jti": f"{KEY.key_sid}-{NOW}",
        "grants": {"video": {"room": "tenant:standup"}, "identity": "alice"},
        "iss": KEY.key_sid,
        "exp": NOW + 900,
        "nbf": NOW,
        "sub": KEY.account_sid,
    }
    assert (token.issued_at, token.expires_at, token.key_sid) == (NOW, NOW + 900, KEY.key_sid)


def test_the_signature_verifies_with_the_key_secret_only() -> None:
    token = mint_access_token(KEY, "alice", "r", ttl=60, now=NOW)
    options = {"verify_exp": False, "verify_nbf": False}
    decoded = pyjwt.decode(token.jwt, KEY.secret.get_secret_value(), algorithms=["HS256"], options=options)
    assert decoded["grants"]["identity"] == "alice"
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(token.jwt, "another-secret-of-the-same-size-1", algorithms=["HS256"], options=options)


@pytest.mark.parametrize("ttl", [0, -5, MAX_TOKEN_TTL_SECONDS + 1])
def test_lifetimes_outside_what_twilio_accepts_are_refused(ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl"):
        mint_access_token(KEY, "alice", "r", ttl=ttl, now=NOW)


def test_reprs_show_neither_the_secret_nor_the_jwt() -> None:
    token = mint_access_token(KEY, "alice", "r", ttl=60, now=NOW)
    assert KEY.secret.get_secret_value() not in repr(KEY)
    assert token.jwt not in repr(token)
