"""Error classification table, redaction and credential handling of the Twilio gateway."""

from __future__ import annotations

import json

import aiohttp
import pytest
from pydantic import SecretStr
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.response import Response

from twilio_video_operator.gateway import catalog
from twilio_video_operator.gateway.classify import classify, error_from_status
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import (
    AuthError,
    GatewayError,
    NotFoundError,
    RetryableError,
    TerminalError,
    ThrottledError,
)
from twilio_video_operator.gateway.redaction import REDACTED, redact
from twilio_video_operator.gateway.transport import CallRecord, Exchange

AC = "AC" + "a" * 32
SK = "SK" + "b" * 32
SECRET = "s3cretValueOfTheApiKey0123456789"
TOKEN = "authTokenValue0123456789abcdef00"


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, 20429, ThrottledError),
        (429, None, ThrottledError),
        (429, 60202, TerminalError),  # Verify: max check attempts, for good
        (429, 60203, TerminalError),  # Verify: max send attempts
        (400, 20429, ThrottledError),
        (401, 20003, AuthError),
        (401, None, AuthError),
        (403, 20003, AuthError),
        (403, None, AuthError),
        (404, 20404, NotFoundError),
        (404, None, NotFoundError),
        (400, 53113, TerminalError),
        (400, 53120, TerminalError),
        (400, 20001, TerminalError),
        (409, None, TerminalError),
        (422, None, TerminalError),
        (500, None, RetryableError),
        (502, None, RetryableError),
        (503, 20500, RetryableError),
        (504, None, RetryableError),
        (408, None, RetryableError),
    ],
)
def test_classification_table(status: int, code: int | None, expected: type[GatewayError]) -> None:
    error = error_from_status(catalog.FETCH_ROOM, status=status, code=code, message="m")
    assert type(error) is expected
    assert error.status == status
    assert error.code == code
    assert error.operation == "FetchRoom"


@pytest.mark.parametrize(
    ("operation", "status", "maybe_applied"),
    [
        (catalog.CREATE_ROOM, 500, True),
        (catalog.CREATE_COMPOSITION, 503, True),
        (catalog.CREATE_NEW_KEY, 502, True),
        (catalog.CREATE_ROOM, 408, False),
        (catalog.FETCH_ROOM, 500, False),
        (catalog.UPDATE_ROOM, 500, False),
        (catalog.DELETE_KEY, 500, False),
    ],
)
def test_server_errors_on_creates_may_have_been_applied(
    operation: catalog.Operation, status: int, maybe_applied: bool
) -> None:
    error = error_from_status(operation, status=status, code=None, message="m")
    assert isinstance(error, RetryableError)
    assert error.maybe_applied is maybe_applied


def test_rest_exception_keeps_code_status_and_request_id() -> None:
    record = CallRecord(catalog.CREATE_ROOM)
    record.exchanges.append(Exchange("POST", "/v1/Rooms", 400, 0.01, request_id="RQ123"))
    exc = TwilioRestException(
        400, "https://video.twilio.com/v1/Rooms", "Unable to create record: Room exists", 53113
    )
    error = classify(exc, catalog.CREATE_ROOM, record)
    assert isinstance(error, TerminalError)
    assert (error.status, error.code, error.request_id) == (400, 53113, "RQ123")
    assert error.message == "Room exists"
    assert "RQ123" in str(error) and "53113" in str(error)


def test_rest_exception_without_body_code_has_no_twilio_code() -> None:
    # The SDK copies the HTTP status into ``code`` when the body has none.
    exc = TwilioRestException(503, "https://video.twilio.com/v1/Rooms/RM1", "Unable to fetch record", 503)
    error = classify(exc, catalog.FETCH_ROOM)
    assert isinstance(error, RetryableError)
    assert error.code is None


def test_list_errors_are_classified_from_the_raw_response() -> None:
    body = json.dumps({"code": 20429, "message": "Too Many Requests", "status": 429})
    exc = TwilioException(
        "Unable to fetch page", Response(429, body, {"Retry-After": "7", "Twilio-Request-Id": "RQ9"})
    )
    error = classify(exc, catalog.LIST_ROOM)
    assert isinstance(error, ThrottledError)
    assert (error.code, error.retry_after, error.request_id) == (20429, 7.0, "RQ9")

    exc = TwilioException("Unable to fetch page", Response(400, '{"code": 20001, "message": "Bad PageSize"}'))
    error = classify(exc, catalog.LIST_COMPOSITION)
    assert isinstance(error, TerminalError)
    assert (error.status, error.code, error.message) == (400, 20001, "Bad PageSize")

    exc = TwilioException("Unable to fetch page", Response(502, "<html>bad gateway</html>"))
    error = classify(exc, catalog.LIST_KEY)
    assert isinstance(error, RetryableError)
    assert (error.status, error.code) == (502, None)


def test_throttled_error_takes_retry_after_from_the_recorded_exchange() -> None:
    record = CallRecord(catalog.CREATE_ROOM)
    record.exchanges.append(Exchange("POST", "/v1/Rooms", 429, 0.01, request_id="RQ1", retry_after="4"))
    exc = TwilioRestException(429, "u", "Unable to create record: Too Many Requests", 20429)
    error = classify(exc, catalog.CREATE_ROOM, record)
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 4.0


def test_network_errors() -> None:
    dropped = classify(aiohttp.ServerDisconnectedError(), catalog.CREATE_ROOM)
    assert isinstance(dropped, RetryableError) and dropped.maybe_applied and dropped.status is None
    timed_out = classify(TimeoutError(), catalog.CREATE_COMPOSITION)
    assert isinstance(timed_out, RetryableError) and timed_out.maybe_applied
    # Connecting timed out: nothing was sent, so even a create is safe to send again.
    never_sent = classify(aiohttp.ConnectionTimeoutError(), catalog.CREATE_ROOM)
    assert isinstance(never_sent, RetryableError) and not never_sent.maybe_applied
    read = classify(aiohttp.ServerDisconnectedError(), catalog.FETCH_ROOM)
    assert isinstance(read, RetryableError) and not read.maybe_applied


def test_bugs_are_not_classified() -> None:
    assert classify(KeyError("x"), catalog.FETCH_ROOM) is None
    assert classify(AttributeError("x"), catalog.FETCH_ROOM) is None


def test_unreadable_success_body_is_terminal() -> None:
    error = classify(TwilioException("Page Records can not be deserialized"), catalog.LIST_ROOM)
    assert isinstance(error, TerminalError)


def test_error_messages_are_redacted() -> None:
    creds = CredentialSet(AC, SK, SecretStr(SECRET), SecretStr(TOKEN))
    exc = TwilioRestException(
        400,
        "u",
        f"Unable to create record: rejected {SECRET} and token {TOKEN}; "
        "Authorization: Basic QUM6c2VjcmV0c2VjcmV0",
        20001,
    )
    error = classify(exc, catalog.CREATE_ROOM, secrets=creds.secret_values)
    assert error is not None
    for text in (str(error), repr(error), error.message):
        assert SECRET not in text
        assert TOKEN not in text
        assert "QUM6c2VjcmV0c2VjcmV0" not in text
        assert REDACTED in text


def test_long_server_messages_are_truncated() -> None:
    exc = TwilioRestException(400, "u", "x" * 5000, 20001)
    error = classify(exc, catalog.CREATE_ROOM)
    assert error is not None and len(error.message) <= 300


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("Authorization: Basic QUMxMjM0NTY3ODk6c2VjcmV0", "QUMxMjM0NTY3ODk6c2VjcmV0"),
        ("bearer abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJBQzEifQ.c2lnbmF0dXJl here", "eyJzdWIiOiJBQzEifQ"),
        ("https://AC1:sekrit@api.twilio.com/x", "sekrit"),
        ("ApiSecret=hunter2&x=1", "hunter2"),
        ('{"auth_token": "tok-value"}', "tok-value"),
    ],
)
def test_redact_patterns(text: str, leak: str) -> None:
    cleaned = redact(text)
    assert leak not in cleaned
    assert REDACTED in cleaned


def test_redact_leaves_ordinary_messages_alone() -> None:
    message = "Basic authentication failed for Room RM123: Room exists"
    assert redact(message) == message


def test_credential_fingerprint_is_stable_and_secret_free() -> None:
    creds = CredentialSet(AC, SK, SecretStr(SECRET), SecretStr(TOKEN))
    same = CredentialSet(AC, SK, SecretStr(SECRET), SecretStr(TOKEN))
    assert creds.fingerprint == same.fingerprint
    assert len(creds.fingerprint) == 16
    for changed in (
        CredentialSet(AC, SK, SecretStr(SECRET + "x"), SecretStr(TOKEN)),
        CredentialSet(AC, SK, SecretStr(SECRET), None),
        CredentialSet(AC, "SK" + "c" * 32, SecretStr(SECRET), SecretStr(TOKEN)),
    ):
        assert changed.fingerprint != creds.fingerprint
    for text in (creds.fingerprint, str(creds), repr(creds)):
        assert SECRET not in text and TOKEN not in text
        assert SECRET[:8] not in text


def test_credential_auth_paths() -> None:
    both = CredentialSet(AC, SK, SecretStr(SECRET), SecretStr(TOKEN))
    assert both.rest_auth() == (SK, SECRET)
    assert both.keys_api_auth() == (AC, TOKEN)
    token_only = CredentialSet(AC, auth_token=SecretStr(TOKEN))
    assert token_only.rest_auth() == (AC, TOKEN)
    key_only = CredentialSet(AC, SK, SecretStr(SECRET))
    assert key_only.keys_api_auth() == (SK, SECRET)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"account_sid": ""},
        {"account_sid": AC},
        {"account_sid": AC, "api_key": SK},
        {"account_sid": AC, "api_secret": SecretStr(SECRET), "auth_token": SecretStr(TOKEN)},
    ],
)
def test_credential_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CredentialSet(**kwargs)  # type: ignore[arg-type]


def test_credentials_from_secret_data() -> None:
    creds = CredentialSet.from_mapping(
        {
            "TWILIO_ACCOUNT_SID": AC,
            "TWILIO_API_KEY": SK,
            "TWILIO_API_SECRET": SECRET,
            "TWILIO_AUTH_TOKEN": " ",
        }
    )
    assert creds.api_key == SK
    assert creds.api_secret is not None and creds.api_secret.get_secret_value() == SECRET
    assert creds.auth_token is None
    with pytest.raises(ValueError):
        CredentialSet.from_mapping({"TWILIO_API_KEY": SK})
