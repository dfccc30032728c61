"""Token request rules: identities, lifetimes, room state, access and moderation lists."""

from __future__ import annotations

import pytest

from twilio_video_operator.tokens.errors import TokenRequestError
from twilio_video_operator.tokens.policy import (
    check_identity_access,
    check_room_state,
    effective_ttl,
    identity_matches,
    validate_identity,
    validate_ttl,
)


def refusal(call: object, *args: object) -> tuple[int, str]:
    with pytest.raises(TokenRequestError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.status, caught.value.reason


@pytest.mark.parametrize("identity", ["alice", "x" * 128, "Zoë", "user@example.com", "a b", "☕"])
def test_identities_twilio_accepts(identity: str) -> None:
    assert validate_identity(identity) == identity


@pytest.mark.parametrize(
    "identity", ["", "x" * 129, "tab\there", "new\nline", "nul\x00", "del\x7f", 42, None]
)
def test_identities_twilio_refuses(identity: object) -> None:
    assert refusal(validate_identity, identity) == (422, "InvalidIdentity")


@pytest.mark.parametrize("ttl", [1, 60, 86400])
def test_valid_lifetimes(ttl: int) -> None:
    assert validate_ttl(ttl) == ttl


def test_a_missing_lifetime_means_the_default() -> None:
    assert validate_ttl(None) is None


@pytest.mark.parametrize("ttl", [0, -1, 86401, 1.5, "600", True])
def test_invalid_lifetimes(ttl: object) -> None:
    assert refusal(validate_ttl, ttl) == (422, "InvalidTtl")


@pytest.mark.parametrize(
    ("identity", "patterns", "expected"),
    [
        ("alice", ["alice"], True),
        ("alice", ["al*"], True),
        ("alice", ["*ce"], True),
        ("alice", ["a*i*e"], True),
        ("alice", ["*"], True),
        ("alice", ["bob", "carol"], False),
        ("alice", [], False),
        ("alice", ["Alice"], False),
        ("a?c", ["a?c"], True),
        ("abc", ["a?c"], False),
        ("a[b]c", ["a[b]c"], True),
        ("abc", ["a[b]c"], False),
        ("line\nbreak", ["line*"], True),
        ("staff-1", ["staff-*", "guest-*"], True),
    ],
)
def test_identity_globs_treat_only_the_star_as_special(
    identity: str, patterns: list[str], expected: bool
) -> None:
    assert identity_matches(identity, patterns) is expected


@pytest.mark.parametrize("state", ["in-progress", "Scheduled"])
def test_open_and_scheduled_rooms_get_tokens(state: str) -> None:
    check_room_state(state)


@pytest.mark.parametrize("state", ["completed", "failed", None, ""])
def test_other_rooms_do_not(state: str | None) -> None:
    assert refusal(check_room_state, state) == (409, "RoomNotInProgress")


def test_blocked_identities_are_refused_even_when_allowed() -> None:
    assert refusal(check_identity_access, "mallory", ["mallory"], ["*"]) == (403, "IdentityBlocked")


def test_identities_outside_the_allow_list_are_refused() -> None:
    assert refusal(check_identity_access, "eve", [], ["staff-*"]) == (403, "IdentityNotAllowed")
    check_identity_access("staff-7", [], ["staff-*"])
    check_identity_access("anyone", [], None)


def test_the_lifetime_is_the_smallest_cap() -> None:
    assert effective_ttl(None, [3600, 7200, None]) == 3600
    assert effective_ttl(100, [3600, 7200]) == 100
    assert effective_ttl(99999, [3600, 600]) == 600
    assert effective_ttl(None, []) == 86400
    assert effective_ttl(None, [0]) == 0
