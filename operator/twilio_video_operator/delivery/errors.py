"""Why a delivery failed, as one condition reason, and whether trying again can help."""

from __future__ import annotations

from enum import StrEnum


class DeliveryReason(StrEnum):
    """Condition reasons of a failed delivery (one CamelCase word each)."""

    BUCKET_NOT_FOUND = "BucketNotFound"
    """The bucket does not exist (NoSuchBucket)."""
    ACCESS_DENIED = "AccessDenied"
    """The credentials are valid but may not do this (AccessDenied)."""
    INVALID_CREDENTIALS = "InvalidCredentials"
    """The storage service does not accept the credentials (InvalidAccessKeyId, SignatureDoesNotMatch)."""
    CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
    """The credentials Secret or one of its keys is missing."""
    INVALID_TARGET = "InvalidTarget"
    """The target is unusable as configured (bad endpoint, key or request rejected as invalid)."""
    ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed"
    """The endpoint is not one the operator's settings allow deliveries to (no request is sent)."""
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    """The storage service did not answer, answered 5xx or throttled."""
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    """The media could not be downloaded (network error, non-2xx, stream cut short)."""
    SIZE_MISMATCH = "SizeMismatch"
    """The downloaded bytes do not match the announced size."""


class DeliveryError(Exception):
    """A delivery that did not happen. The message names the target but never a credential.

    ``retryable`` is True when the same attempt may succeed later without any change (network, 5xx,
    throttling, an interrupted download); False when something must change first (bucket, permissions,
    credentials). Callers retry both kinds with backoff, the latter more slowly.
    """

    def __init__(self, reason: DeliveryReason, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"DeliveryError(reason={self.reason!r}, retryable={self.retryable!r}, message={self.message!r})"
        )
