"""JSON log lines and the redaction of secrets in every part of a record."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from twilio_video_operator.logs import (
    MASK,
    forget_secrets,
    install_redaction,
    object_fields,
    redact,
    register_secret,
    setup_logging,
)

AUTH_TOKEN = "f3c1d2e4b5a697887766554433221100"
API_SECRET = "kQ9vX2mN7pL4rT8wZ1yB6cD3fG5hJ0sA"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJqdGkiOiJTSzEyMy0xNzAwMDAwMDAwIiwiZ3JhbnRzIjp7ImlkZW50aXR5IjoiYWxpY2UifX0"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)


@pytest.fixture(autouse=True)
def clean_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Root logging as JSON into a buffer; the handler is removed afterwards."""
    buffer = io.StringIO()
    handler = setup_logging("DEBUG", stream=buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_the_standard_fields(stream: io.StringIO) -> None:
    logging.getLogger("twilio_video_operator.test").info("room %s created", "lobby")
    (entry,) = lines(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "twilio_video_operator.test"
    assert entry["message"] == "room lobby created"
    assert entry["time"].endswith("+00:00")


def test_extra_fields_become_top_level_keys(stream: io.StringIO) -> None:
    extra = {
        **object_fields(namespace="team-a", name="lobby", kind="VideoRoom"),
        "twilio_request_id": "RQ123",
    }
    logging.getLogger("twilio_video_operator.test").warning("synced", extra=extra)
    (entry,) = lines(stream)
    assert entry["namespace"] == "team-a"
    assert entry["name"] == "lobby"
    assert entry["kind"] == "VideoRoom"
    assert entry["twilio_request_id"] == "RQ123"
    assert "object_name" not in entry


def test_kopf_object_references_become_namespace_name_kind(stream: io.StringIO) -> None:
    ref = {"apiVersion": "video.openclaw.io/v1alpha1", "kind": "VideoRoom", "name": "lobby", "namespace": "a"}
    logging.getLogger("kopf.objects").info("handled", extra={"k8s_ref": ref, "k8s_skip": False})
    (entry,) = lines(stream)
    assert (entry["namespace"], entry["name"], entry["kind"]) == ("a", "lobby", "VideoRoom")
    assert "k8s_ref" not in entry


def test_registered_secrets_are_masked_in_message_args_and_extra(stream: io.StringIO) -> None:
    register_secret(AUTH_TOKEN)
    register_secret(SecretStr(API_SECRET))
    logger = logging.getLogger("twilio_video_operator.test")
    logger.error(
        f"token {AUTH_TOKEN} refused; secret %s",
        API_SECRET,
        extra={"request": {"headers": [f"x-secret: {API_SECRET}"]}, "auth": AUTH_TOKEN},
    )
    output = stream.getvalue()
    assert AUTH_TOKEN not in output
    assert API_SECRET not in output
    (entry,) = lines(stream)
    assert entry["message"] == f"token {MASK} refused; secret {MASK}"
    assert entry["request"] == {"headers": [f"x-secret: {MASK}"]}
    assert entry["auth"] == MASK


@pytest.mark.no_secret_scan  # the record carries the secrets on purpose: the formatter must mask them
def test_exception_text_is_redacted(stream: io.StringIO) -> None:
    register_secret(AUTH_TOKEN)
    try:
        raise RuntimeError(f"upstream echoed {AUTH_TOKEN} and {JWT}")
    except RuntimeError:
        logging.getLogger("twilio_video_operator.test").exception("call failed")
    output = stream.getvalue()
    assert AUTH_TOKEN not in output
    assert JWT not in output
    (entry,) = lines(stream)
    assert "RuntimeError: upstream echoed [REDACTED] and [REDACTED]" in entry["exception"]


def test_unregistered_jwts_and_authorization_headers_are_masked() -> None:
    assert redact(f"minted {JWT} for alice") == f"minted {MASK} for alice"
    assert redact("Authorization: Basic QUMxMjM6c2VjcmV0") == f"Authorization: Basic {MASK}"
    assert redact("authorization=Bearer abc.def-ghi") == f"authorization=Bearer {MASK}"
    assert redact('{"Authorization": "Bearer sk-live-123"}') == f'{{"Authorization": "Bearer {MASK}"}}'
    assert redact("sent Bearer c2VydmljZWFjY291bnQtdG9rZW4tdmFsdWU") == f"sent Bearer {MASK}"


def test_ordinary_text_is_left_alone() -> None:
    text = "room RM123 (group, 25 participants) is in-progress; basic settings applied"
    assert redact(text) == text


def test_tiny_or_empty_secrets_are_not_registered() -> None:
    register_secret("")
    register_secret(None)
    register_secret("ab")
    assert redact("a tab") == "a tab"


def test_a_secret_containing_another_is_masked_whole() -> None:
    register_secret("abcd")
    register_secret("abcdefgh")
    assert redact("x abcdefgh y") == f"x {MASK} y"


def test_event_poster_sees_redacted_object_logs() -> None:
    """kopf turns object-logger records into Kubernetes Events; they must be redacted before that."""
    register_secret(AUTH_TOKEN)
    install_redaction()
    seen: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    objects_logger = logging.getLogger("kopf.objects")
    capture = Capture()
    objects_logger.addHandler(capture)
    try:
        objects_logger.warning("credentials %s rejected", AUTH_TOKEN, extra={"k8s_ref": {"name": "lobby"}})
    finally:
        objects_logger.removeHandler(capture)
    assert seen == [f"credentials {MASK} rejected"]


def test_events_never_carry_a_traceback() -> None:
    """A handler that raises is logged by kopf with the exception attached; the Event it posts for the
    object says what failed, without the traceback."""
    from kopf._core.engines.posting import K8sPoster

    install_redaction()
    objects_logger = logging.getLogger("kopf.objects")
    [poster] = [handler for handler in objects_logger.handlers if isinstance(handler, K8sPoster)]
    try:
        raise OverflowError("date value out of range")
    except OverflowError:
        record = objects_logger.makeRecord(
            "kopf.objects", logging.ERROR, __file__, 1, "Handler %r failed: %s", ("x", "boom"), sys.exc_info()
        )
    for check in objects_logger.filters:
        check.filter(record)

    assert poster.format(record) == "Handler 'x' failed: boom"


def test_setup_logging_is_idempotent() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("INFO", stream=first)
    handler = setup_logging("INFO", stream=second)
    try:
        logging.getLogger("twilio_video_operator.test").info("once")
        assert first.getvalue() == ""
        assert len(lines(second)) == 1
    finally:
        logging.getLogger().removeHandler(handler)


def test_phone_numbers_and_email_addresses_are_masked_in_every_record(stream: io.StringIO) -> None:
    spec = {
        "recipients": [
            {"phone": "+15551230001"},
            {"phone": "whatsapp:+447700900123"},
            {"email": "a.b@example.co.uk"},
        ]
    }
    logging.getLogger("kopf.objects").debug(
        "Creation is in progress: %r", spec, extra={"to": ["+15551230001"]}
    )
    (entry,) = lines(stream)
    assert (
        "1555" not in json.dumps(entry)
        and "example" not in json.dumps(entry)
        and "447700" not in json.dumps(entry)
    )
    assert entry["message"].count("[CONTACT]") == 3 and entry["to"] == ["[CONTACT]"]
    logging.getLogger("twilio_video_operator.test").info("participant seconds +2160000, ratio 1+1")
    assert lines(stream)[-1]["message"] == "participant seconds +2160000, ratio 1+1"  # too short for a number
    assert redact("+15551230001") == "+15551230001"  # secrets only: contacts are masked in log records
