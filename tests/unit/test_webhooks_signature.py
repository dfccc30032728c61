"""X-Twilio-Signature verification, Auth Tokens by account, and deduplication memory."""

from __future__ import annotations

from pydantic import SecretStr
from twilio.request_validator import RequestValidator

from twilio_video_operator.webhooks.accounts import AuthTokens
from twilio_video_operator.webhooks.dedupe import Deduplicator
from twilio_video_operator.webhooks.signature import is_valid_signature, public_url

TOKEN = "0123456789abcdef0123456789abcdef"
URL = "https://operator.example.com/twilio/room-events"
PARAMS = {"AccountSid": "AC1", "RoomSid": "RM1", "StatusCallbackEvent": "room-ended"}


def signature(url: str = URL, params: dict[str, str] = PARAMS, token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


def test_genuine_signature_is_accepted_as_mapping_or_pairs() -> None:
    assert is_valid_signature(TOKEN, URL, PARAMS, signature())
    assert is_valid_signature(TOKEN, URL, list(PARAMS.items()), signature())


def test_signature_over_the_url_with_the_default_port_is_accepted() -> None:
    with_port = "https://operator.example.com:443/twilio/room-events"
    assert is_valid_signature(TOKEN, URL, PARAMS, signature(url=with_port))


def test_anything_else_is_refused() -> None:
    assert not is_valid_signature(TOKEN, URL, PARAMS, "")
    assert not is_valid_signature("", URL, PARAMS, signature())
    assert not is_valid_signature("another-token-0123456789abcdef", URL, PARAMS, signature())
    assert not is_valid_signature(TOKEN, URL, {**PARAMS, "RoomSid": "RM2"}, signature())
    assert not is_valid_signature(TOKEN, "https://evil.example.com/twilio/room-events", PARAMS, signature())
    assert not is_valid_signature(TOKEN, URL, PARAMS, "bm90IGEgc2lnbmF0dXJl")


def test_repeated_form_keys_are_all_signed() -> None:
    pairs = [("AccountSid", "AC1"), ("Tag", "b"), ("Tag", "a")]
    validator = RequestValidator(TOKEN)
    from multidict import MultiDict

    genuine = validator.compute_signature(URL, MultiDict(pairs))
    assert is_valid_signature(TOKEN, URL, pairs, genuine)
    assert not is_valid_signature(TOKEN, URL, pairs[:2], genuine)


def test_public_url_ignores_the_request_host() -> None:
    assert public_url("https://operator.example.com/", "/twilio/room-events?x=1") == URL + "?x=1"


def test_auth_tokens_by_source_are_bounded_and_never_shown() -> None:
    tokens = AuthTokens("AC0", "operator", max_sources=2)
    tokens.accept(("a", "s"), "AC1", "one")
    tokens.accept(("b", "s"), "AC2", SecretStr("two"))
    tokens.accept(("a", "s"), "AC1", "one-again")  # the same Secret changed: replaces its entry
    tokens.accept(("c", "s"), "AC3", "three")  # pushes out AC2's Secret, the least recently accepted
    assert not tokens.accept(("d", "s"), "AC4", None)
    assert not tokens.accept(("e", "s"), "", "x")
    assert tokens.tokens_for("AC1") == ["one-again"] and tokens.tokens_for("AC2") == []
    assert "AC3" in tokens and len(tokens) == 3  # AC0, AC1, AC3
    assert "one-again" not in repr(tokens._accepted)


def test_the_operators_account_is_verified_with_the_operators_token_only() -> None:
    tokens = AuthTokens("AC0", "operator")
    assert not tokens.accept(("tenant", "creds"), "AC0", "chosen-by-a-tenant")
    assert tokens.tokens_for("AC0") == ["operator"]


def test_two_namespaces_using_one_account_keep_their_own_entries() -> None:
    tokens = AuthTokens("AC0", "operator")
    tokens.accept(("a", "creds"), "AC1", "primary")
    tokens.accept(("b", "creds"), "AC1", "secondary")
    assert tokens.tokens_for("AC1") == ["primary", "secondary"]
    tokens.forget(("b", "creds"))
    assert tokens.tokens_for("AC1") == ["primary"]


def test_deduplicator_remembers_a_bounded_number_of_keys() -> None:
    seen = Deduplicator(max_events=3)
    for key in ("a", "b", "c"):
        assert not seen.seen(key)
        seen.add(key)
    assert seen.seen("a")
    seen.add("d")
    assert not seen.seen("a") and seen.seen("d") and len(seen) == 3
