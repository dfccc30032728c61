"""How storage errors map to condition reasons and retryability."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from twilio_video_operator.delivery import DeliveryReason, S3Target
from twilio_video_operator.delivery.s3 import classify_client_error

TARGET = S3Target("media", "ns/name/CJ1.mp4", endpoint="http://127.0.0.1:9000")


def client_error(code: str, status: int, message: str = "server text") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "reason", "retryable"),
    [
        ("NoSuchBucket", 404, DeliveryReason.BUCKET_NOT_FOUND, False),
        ("AccessDenied", 403, DeliveryReason.ACCESS_DENIED, False),
        ("403", 403, DeliveryReason.ACCESS_DENIED, False),
        ("InvalidAccessKeyId", 403, DeliveryReason.INVALID_CREDENTIALS, False),
        ("SignatureDoesNotMatch", 403, DeliveryReason.INVALID_CREDENTIALS, False),
        ("ExpiredToken", 400, DeliveryReason.INVALID_CREDENTIALS, False),
        ("SlowDown", 503, DeliveryReason.STORAGE_UNAVAILABLE, True),
        ("InternalError", 500, DeliveryReason.STORAGE_UNAVAILABLE, True),
        ("Whatever", 502, DeliveryReason.STORAGE_UNAVAILABLE, True),
        ("NoSuchUpload", 404, DeliveryReason.STORAGE_UNAVAILABLE, True),
        ("InvalidArgument", 400, DeliveryReason.INVALID_TARGET, False),
        ("EntityTooLarge", 400, DeliveryReason.INVALID_TARGET, False),
    ],
)
def test_classification(code: str, status: int, reason: DeliveryReason, retryable: bool) -> None:
    error = classify_client_error(client_error(code, status), TARGET, "upload part 1")
    assert (error.reason, error.retryable) == (reason, retryable)
    assert str(error).startswith(f"{reason.value}: ")


def test_messages_name_the_bucket_but_never_echo_the_server_text() -> None:
    error = classify_client_error(
        client_error("SignatureDoesNotMatch", 403, "StringToSign AWS4-HMAC-SHA256 secretish"),
        TARGET,
        "start the upload",
    )
    assert "'media'" in error.message and "start the upload" in error.message
    assert "secretish" not in str(error) and "StringToSign" not in str(error)
