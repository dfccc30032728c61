"""Fixed-size parts from a chunked stream, and the credential-free target URL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from twilio_video_operator.delivery import DeliveryError, DeliveryReason, S3Credentials, S3Deliverer, S3Target
from twilio_video_operator.delivery.source import describe_url, fixed_parts
from twilio_video_operator.delivery.target import endpoint_allowed


async def _chunks(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def collect(pieces: list[bytes], part_size: int) -> list[bytes]:
    return [part async for part in fixed_parts(_chunks(pieces), part_size)]


async def test_parts_have_the_fixed_size_and_the_last_one_the_rest() -> None:
    parts = await collect([b"abc", b"defgh", b"", b"ij"], 4)
    assert parts == [b"abcd", b"efgh", b"ij"]


async def test_an_exact_multiple_ends_with_a_full_part() -> None:
    assert await collect([b"abcdefgh"], 4) == [b"abcd", b"efgh"]


async def test_an_empty_stream_has_no_part() -> None:
    assert await collect([], 4) == []
    assert await collect([b"", b""], 4) == []


async def test_the_part_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        await collect([b"a"], 0)


@given(
    pieces=st.lists(st.binary(max_size=50), max_size=30),
    part_size=st.integers(min_value=1, max_value=64),
)
async def test_regrouping_keeps_every_byte_in_order(pieces: list[bytes], part_size: int) -> None:
    parts = await collect(pieces, part_size)
    assert b"".join(parts) == b"".join(pieces)
    assert all(len(part) == part_size for part in parts[:-1])
    assert all(0 < len(part) <= part_size for part in parts)


def test_target_url_on_aws_and_on_an_endpoint_without_userinfo() -> None:
    assert S3Target("media", "a/b c.mp4").url == "s3://media/a/b c.mp4"
    target = S3Target("media", "a/b c.mp4", endpoint="https://user:pw@s3.example.test:9000/")
    assert target.endpoint_url == "https://s3.example.test:9000/"
    assert target.url == "https://s3.example.test:9000/media/a/b%20c.mp4"
    assert "pw" not in target.url


def test_described_urls_leave_out_presigned_queries_and_userinfo() -> None:
    url = "https://u:p@media.example.test/v1/file.mp4?X-Amz-Signature=abc&Expires=1"
    assert describe_url(url) == "https://media.example.test/v1/file.mp4"


def test_credentials_from_secret_data() -> None:
    data = {
        "AWS_ACCESS_KEY_ID": " AKID ",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
        "AWS_SESSION_TOKEN": "tok-en",
    }
    creds = S3Credentials.from_secret_data(data)
    assert creds.access_key_id == "AKID"
    assert creds.secret_values == ("s3cr3t-value", "tok-en")
    assert "s3cr3t-value" not in repr(creds) and "tok-en" not in repr(creds)


def test_credentials_without_a_session_token() -> None:
    creds = S3Credentials.from_secret_data({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert creds.session_token is None


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "s"}, "AWS_ACCESS_KEY_ID"),
        ({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "  "}, "AWS_SECRET_ACCESS_KEY"),
        ({}, "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY"),
    ],
)
def test_missing_credential_keys_are_named(data: dict[str, str], missing: str) -> None:
    with pytest.raises(DeliveryError) as caught:
        S3Credentials.from_secret_data(data, source="Secret s3-creds")
    assert caught.value.reason is DeliveryReason.CREDENTIALS_NOT_FOUND and not caught.value.retryable
    assert str(caught.value) == f"CredentialsNotFound: Secret s3-creds has no {missing}"


@pytest.mark.parametrize(
    ("endpoint", "allowed", "expected"),
    [
        (None, ("https://s3.example.com",), True),  # AWS S3
        ("https://s3.example.com", (), True),  # no list: any endpoint
        ("https://s3.example.com/", ("https://S3.example.com",), True),
        ("https://user:pw@s3.example.com", ("https://s3.example.com",), True),
        ("http://s3.example.com", ("https://s3.example.com",), False),  # another scheme
        ("https://s3.example.com:9000", ("https://s3.example.com",), False),  # another port
        ("https://eu.r2.example.net", ("https://*.r2.example.net",), True),
        ("https://r2.example.net", ("https://*.r2.example.net",), False),
        ("https://evilr2.example.net", ("https://*.r2.example.net",), False),
        ("http://169.254.169.254", ("https://s3.example.com",), False),
        ("http://kubernetes.default.svc", ("https://s3.example.com",), False),
    ],
)
def test_endpoint_allow_list(endpoint: str | None, allowed: tuple[str, ...], expected: bool) -> None:
    assert endpoint_allowed(endpoint, allowed) is expected


async def test_an_endpoint_outside_the_allow_list_is_refused_before_any_request() -> None:
    deliverer = S3Deliverer(allowed_endpoints=("https://s3.example.com",))
    target = S3Target(bucket="b", key="k", endpoint="http://169.254.169.254")
    try:
        with pytest.raises(DeliveryError) as raised:
            await deliverer.deliver(
                source_url="http://127.0.0.1:1/media",
                target=target,
                credentials=S3Credentials("AKID", SecretStr("s3-secret")),
                source_id="CJ1",
                expected_size=1,
            )
    finally:
        await deliverer.close()
    assert raised.value.reason is DeliveryReason.ENDPOINT_NOT_ALLOWED and not raised.value.retryable
