"""Twilio Video Access Tokens: HS256 JWTs built exactly as ``twilio.jwt.access_token.AccessToken`` builds
them (same header, claims and claim order), but with the time given by the caller so that tokens follow
the operator's clock, and without the SDK's per-call overhead.

Header ``{"alg": "HS256", "cty": "twilio-fpa;v=1", "typ": "JWT"}``; claims ``jti`` (``<key SID>-<issued
at>``), ``grants`` (``video.room`` and ``identity``), ``iss`` (key SID), ``exp``, ``nbf`` (issued at) and
``sub`` (account SID).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field

from pydantic import SecretStr

#: Twilio refuses tokens valid for longer than this.
MAX_TOKEN_TTL_SECONDS = 24 * 3600
CONTENT_TYPE = "twilio-fpa;v=1"
_HEADER = {"alg": "HS256", "cty": CONTENT_TYPE, "typ": "JWT"}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _segment(value: object) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


_HEADER_SEGMENT = _segment(_HEADER)


@dataclass(frozen=True)
class SigningKey:
    """An API key that signs tokens: account SID, key SID and secret (``repr`` never shows the secret)."""

    account_sid: str
    key_sid: str
    secret: SecretStr = field(repr=False)


@dataclass(frozen=True)
class AccessToken:
    """A minted token. ``jwt`` is the credential itself: hand it to the client, never log it."""

    jwt: str = field(repr=False)
    identity: str
    room_name: str
    key_sid: str
    issued_at: int
    expires_at: int


def access_token_claims(
    key: SigningKey, identity: str, room_name: str, issued_at: int, ttl: int
) -> dict[str, object]:
    """The claims, in the order the Twilio SDK writes them."""
    return {
        "jti": f"{key.key_sid}-{issued_at}",
        "grants": {"video": {"room": room_name}, "identity": identity},
        "iss": key.key_sid,
        "exp": issued_at + ttl,
        "nbf": issued_at,
        "sub": key.account_sid,
    }


def mint_access_token(key: SigningKey, identity: str, room_name: str, *, ttl: int, now: float) -> AccessToken:
    """Sign a Video Access Token for ``identity`` in the room ``room_name`` (its UniqueName).

    ``now`` is the issue time in Unix seconds (fractions are dropped, as the SDK does); ``ttl`` must be
    between 1 and 24 hours' worth of seconds.
    """
    if not 1 <= ttl <= MAX_TOKEN_TTL_SECONDS:
        raise ValueError(f"ttl must be between 1 and {MAX_TOKEN_TTL_SECONDS} seconds")
    issued_at = int(now)
    claims = access_token_claims(key, identity, room_name, issued_at, ttl)
    signing_input = f"{_HEADER_SEGMENT}.{_segment(claims)}"
    signature = hmac.new(
        key.secret.get_secret_value().encode(), signing_input.encode("ascii"), hashlib.sha256
    )
    return AccessToken(
        jwt=f"{signing_input}.{_b64url(signature.digest())}",
        identity=identity,
        room_name=room_name,
        key_sid=key.key_sid,
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )
