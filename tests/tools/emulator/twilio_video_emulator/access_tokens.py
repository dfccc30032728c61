"""Verification of Twilio Access Tokens (HS256 JWTs) presented when a simulated participant joins.

The checks follow what Twilio enforces, each with its error code (HTTP 401):
20101 malformed token, 20102 bad header (``alg`` HS256, ``cty`` ``twilio-fpa;v=1``), 20103 issuer/subject
(``iss`` a live API key of an active account, ``sub`` that same account), 20107 bad signature, 20104 expired
or an expiry more than 24 hours ahead, 20105 not yet valid (``nbf``), 20106 grants (identity or video room).
Whether the room belongs to the token's account (``sub``) is for the caller to check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from .core import EmulatorState, TwilioError
from .entities import Room

CONTENT_TYPE = "twilio-fpa;v=1"
MAX_TOKEN_LIFETIME_SECONDS = 24 * 3600


def _refuse(code: int, message: str) -> TwilioError:
    return TwilioError(401, code, message)


def _b64decode(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _decode_json(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _refuse(20101, "Invalid Access Token") from None
    if not isinstance(value, dict):
        raise _refuse(20101, "Invalid Access Token")
    return value


def verify_access_token(state: EmulatorState, token: object, room: Room, identity: str) -> dict[str, Any]:
    """Return the token's claims if it lets ``identity`` join ``room``; raise ``TwilioError`` otherwise."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise _refuse(20101, "Invalid Access Token")
    header_segment, payload_segment, signature_segment = token.split(".")
    header = _decode_json(header_segment)
    claims = _decode_json(payload_segment)
    if header.get("alg") != "HS256" or header.get("cty") != CONTENT_TYPE:
        raise _refuse(20102, "Invalid Access Token header")
    key = state.keys.get(str(claims.get("iss", "")))
    account = state.accounts.get(key.account_sid) if key is not None else None
    if key is None or account is None or account.status != "active" or claims.get("sub") != key.account_sid:
        raise _refuse(20103, "Invalid Access Token issuer/subject")
    expected = hmac.new(
        key.secret.encode(), f"{header_segment}.{payload_segment}".encode("ascii"), hashlib.sha256
    ).digest()
    try:
        signature = _b64decode(signature_segment)
    except (ValueError, binascii.Error):
        raise _refuse(20107, "Invalid Access Token signature") from None
    if not hmac.compare_digest(signature, expected):
        raise _refuse(20107, "Invalid Access Token signature")
    now = state.clock.now().timestamp()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        raise _refuse(20104, "Access Token expired or expiration date invalid")
    if exp - now > MAX_TOKEN_LIFETIME_SECONDS:
        raise _refuse(20104, "Access Token expiration date is more than 24 hours ahead")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf > now):
        raise _refuse(20105, "Access Token not yet valid")
    grants = claims.get("grants")
    if not isinstance(grants, dict) or grants.get("identity") != identity:
        raise _refuse(20106, "Invalid Access Token grants: identity does not match")
    video = grants.get("video")
    if not isinstance(video, dict):
        raise _refuse(20106, "Invalid Access Token grants: no video grant")
    granted_room = video.get("room")
    if granted_room is not None and granted_room not in (room.unique_name, room.sid):
        raise _refuse(20106, "Invalid Access Token grants: the token is for another room")
    return claims
