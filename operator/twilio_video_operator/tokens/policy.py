"""The rules a token request must pass: identity syntax, the room's state, its access and moderation
rules, and the token lifetime."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from twilio_video_operator.tokens.errors import TokenRequestError, forbidden, unprocessable
from twilio_video_operator.tokens.minting import MAX_TOKEN_TTL_SECONDS

#: Twilio's limit on a participant identity.
MAX_IDENTITY_LENGTH = 128
#: Room states for which tokens are handed out: open now, or scheduled to open (clients may fetch early).
TOKEN_ROOM_STATES = ("in-progress", "Scheduled")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_identity(identity: object) -> str:
    """The identity if Twilio would accept it: a non-empty string of at most 128 characters without
    control characters (422 ``InvalidIdentity`` otherwise)."""
    if not isinstance(identity, str) or not identity:
        raise unprocessable("InvalidIdentity", "identity must be a non-empty string")
    if len(identity) > MAX_IDENTITY_LENGTH:
        raise unprocessable("InvalidIdentity", f"identity must be at most {MAX_IDENTITY_LENGTH} characters")
    if _CONTROL.search(identity):
        raise unprocessable("InvalidIdentity", "identity must not contain control characters")
    return identity


def validate_ttl(ttl: object) -> int | None:
    """The requested lifetime (None when not given): whole seconds from 1 to 86400 (422 ``InvalidTtl``)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TOKEN_TTL_SECONDS:
        raise unprocessable(
            "InvalidTtl", f"ttlSeconds must be a whole number from 1 to {MAX_TOKEN_TTL_SECONDS}"
        )
    return ttl


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def identity_matches(identity: str, patterns: Iterable[str]) -> bool:
    """Whether ``identity`` matches one of ``patterns``, where ``*`` stands for any run of characters
    (every other character, ``?`` and ``[`` included, is literal)."""
    return any(_glob(pattern).fullmatch(identity) is not None for pattern in patterns)


def check_room_state(room_status: str | None) -> None:
    """409 ``RoomNotInProgress`` unless the room is in progress or scheduled."""
    if room_status not in TOKEN_ROOM_STATES:
        state = room_status or "not created yet"
        raise TokenRequestError(
            409, "RoomNotInProgress", f"the room is {state}; tokens are for open rooms only"
        )


def check_identity_access(identity: str, blocked: Iterable[str], allowed: Iterable[str] | None) -> None:
    """403 ``IdentityBlocked`` for a blocked identity; 403 ``IdentityNotAllowed`` outside the allow list."""
    if identity in set(blocked):
        raise forbidden("IdentityBlocked", "this identity is blocked in the room")
    if allowed is not None and not identity_matches(identity, allowed):
        raise forbidden("IdentityNotAllowed", "this identity is not among the room's allowed identities")


def effective_ttl(requested: int | None, caps: Iterable[int | None]) -> int:
    """The lifetime to grant: the requested one (default: the largest allowed), never above any cap."""
    limit = min([MAX_TOKEN_TTL_SECONDS, *(cap for cap in caps if cap is not None)])
    return limit if requested is None else min(requested, limit)
