"""Stream one media file into an S3-compatible bucket with a multipart upload, in bounded memory.

The object appears only when every byte arrived and checked out: the upload is completed after the size
matched both the announced ``Content-Length`` and the size Twilio reported, and aborted on any failure, so
no partial object is ever visible. The SHA-256 of the bytes is computed on the way through and stored as
the object tag ``sha256``; an object that already carries the tag for the same source and size is not
uploaded again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from twilio_video_operator import metrics
from twilio_video_operator.delivery.credentials import S3Credentials
from twilio_video_operator.delivery.errors import DeliveryError, DeliveryReason
from twilio_video_operator.delivery.source import describe_url, fixed_parts, open_media
from twilio_video_operator.delivery.target import S3Target, endpoint_allowed, origin_of

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MIB
MIN_PART_SIZE = 5 * MIB
"""S3 refuses parts below 5 MiB except the last one."""
MAX_PARTS = 10_000
SHA256_TAG = "sha256"
SOURCE_METADATA = "source-id"
SIZE_METADATA = "source-size"
ABORT_TIMEOUT = 10.0

_BUCKET_MISSING = frozenset({"NoSuchBucket"})
_DENIED = frozenset({"AccessDenied", "AllAccessDisabled", "AccountProblem", "403"})
_BAD_CREDENTIALS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired"}
)
_PART_CHECKSUMS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256")
_TRANSIENT = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "NoSuchUpload",
        "OperationAborted",
    }
)


@dataclass(frozen=True)
class DeliveryResult:
    """What is in the bucket now."""

    url: str
    bytes: int
    sha256: str
    uploaded: bool
    """False when the object was already there with the same content and nothing was sent."""
    parts: int = 0


@dataclass(frozen=True)
class _Existing:
    size: int
    source_id: str | None
    sha256: str | None


def classify_client_error(error: ClientError, target: S3Target, action: str) -> DeliveryError:
    """A storage error as a :class:`DeliveryError` with a clear reason (no server text is echoed)."""
    code = str(error.response.get("Error", {}).get("Code", "")) or "Unknown"
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    where = f"bucket {target.bucket!r}"
    if code in _BUCKET_MISSING:
        return DeliveryError(DeliveryReason.BUCKET_NOT_FOUND, f"{where} does not exist", retryable=False)
    if code in _BAD_CREDENTIALS:
        return DeliveryError(
            DeliveryReason.INVALID_CREDENTIALS,
            f"the storage service rejected the credentials ({code}) while trying to {action} in {where}",
            retryable=False,
        )
    if code in _DENIED:
        return DeliveryError(
            DeliveryReason.ACCESS_DENIED,
            f"access denied ({code}) while trying to {action} in {where}",
            retryable=False,
        )
    if code in _TRANSIENT or status >= 500 or status == 429:
        return DeliveryError(
            DeliveryReason.STORAGE_UNAVAILABLE,
            f"the storage service failed to {action} ({code}, HTTP {status or 'n/a'})",
            retryable=True,
        )
    return DeliveryError(
        DeliveryReason.INVALID_TARGET,
        f"the storage service refused to {action} in {where} ({code}, HTTP {status or 'n/a'})",
        retryable=False,
    )


def _transport_error(exc: BaseException, action: str) -> DeliveryError:
    return DeliveryError(
        DeliveryReason.STORAGE_UNAVAILABLE,
        f"cannot reach the storage service to {action} ({type(exc).__name__})",
        retryable=True,
    )


class S3Deliverer:
    """Delivers media files to S3. One instance serves any number of deliveries, one at a time each.

    ``part_size`` bounds memory: about two parts are held at once (one being filled, one being sent).
    ``http`` is the session used to download media; one is created (and closed by :meth:`close`) if not
    given.
    """

    def __init__(
        self,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        http: aiohttp.ClientSession | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        allowed_endpoints: tuple[str, ...] = (),
    ) -> None:
        if part_size < 1:
            raise ValueError("part_size must be positive")
        self.part_size = part_size
        self.allowed_endpoints = allowed_endpoints
        self._http = http
        self._own_http = http is None
        self._config = AioConfig(
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
        )
        self._session = get_session()

    async def close(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None

    def _http_session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
            self._own_http = True
        return self._http

    def _client(self, target: S3Target, credentials: S3Credentials) -> Any:
        if not endpoint_allowed(target.endpoint_url, self.allowed_endpoints):
            raise DeliveryError(
                DeliveryReason.ENDPOINT_NOT_ALLOWED,
                f"the storage endpoint {origin_of(target.endpoint_url or '')} is not one the operator "
                "delivers to (DELIVERY_ALLOWED_ENDPOINTS)",
                retryable=False,
            )
        config = self._config
        if target.endpoint_url is not None:  # S3-compatible services expect path-style addressing
            config = config.merge(AioConfig(s3={"addressing_style": "path"}))
        try:
            return self._session.create_client(
                "s3",
                endpoint_url=target.endpoint_url,
                region_name=target.region or "us-east-1",
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key.get_secret_value(),
                aws_session_token=(
                    credentials.session_token.get_secret_value() if credentials.session_token else None
                ),
                config=config,
            )
        except (BotoCoreError, ValueError) as exc:
            raise DeliveryError(
                DeliveryReason.INVALID_TARGET,
                f"cannot use the storage endpoint {target.endpoint_url or 'AWS'} ({type(exc).__name__})",
                retryable=False,
            ) from None

    async def deliver(
        self,
        *,
        source_url: str,
        target: S3Target,
        credentials: S3Credentials,
        source_id: str,
        expected_size: int | None,
        known_sha256: str | None = None,
        content_type: str | None = None,
    ) -> DeliveryResult:
        """Copy the media at ``source_url`` to ``target``; raise :class:`DeliveryError` on failure.

        ``source_id`` names the content (the composition SID); with ``expected_size`` it decides whether
        an existing object is the same file. ``known_sha256``, when a previous delivery recorded one, must
        also match the object's tag for the upload to be skipped.
        """
        started = time.monotonic()
        try:
            result = await self._deliver(
                source_url, target, credentials, source_id, expected_size, known_sha256, content_type
            )
        except DeliveryError as exc:
            metrics.DELIVERIES.labels(outcome=exc.reason.value).inc()
            raise
        metrics.DELIVERIES.labels(outcome="Uploaded" if result.uploaded else "AlreadyPresent").inc()
        metrics.DELIVERY_DURATION.observe(time.monotonic() - started)
        return result

    async def _deliver(
        self,
        source_url: str,
        target: S3Target,
        credentials: S3Credentials,
        source_id: str,
        expected_size: int | None,
        known_sha256: str | None,
        content_type: str | None,
    ) -> DeliveryResult:
        async with self._client(target, credentials) as client:
            existing = await self._existing(client, target)
            if existing is not None and _same_content(existing, source_id, expected_size, known_sha256):
                assert existing.sha256 is not None  # checked by _same_content
                logger.info("the media is already in the bucket", extra={"target": target.url})
                return DeliveryResult(target.url, existing.size, existing.sha256, uploaded=False)
            await self._abort_stale_uploads(client, target)
            async with open_media(self._http_session(), source_url) as media:
                announced = media.content_length
                if expected_size is not None and announced is not None and announced != expected_size:
                    raise DeliveryError(
                        DeliveryReason.SIZE_MISMATCH,
                        f"{describe_url(source_url)} announces {announced} bytes, Twilio reported "
                        f"{expected_size}",
                        retryable=True,
                    )
                metadata = {SOURCE_METADATA: source_id}
                if expected_size is not None:
                    metadata[SIZE_METADATA] = str(expected_size)
                upload_id = await self._call(
                    "start the upload",
                    target,
                    client.create_multipart_upload(
                        Bucket=target.bucket,
                        Key=target.key,
                        Metadata=metadata,
                        ContentType=content_type or media.content_type or "application/octet-stream",
                    ),
                )
                upload = _MultipartUpload(client, target, str(upload_id["UploadId"]), self)
                try:
                    size, digest, parts = await upload.send(media.chunks(), self.part_size)
                    _check_size(size, announced, expected_size, source_url)
                    await upload.complete()
                except BaseException:
                    await upload.abort()
                    raise
            await self._call(
                "tag the object",
                target,
                client.put_object_tagging(
                    Bucket=target.bucket,
                    Key=target.key,
                    Tagging={"TagSet": [{"Key": SHA256_TAG, "Value": digest}]},
                ),
            )
        metrics.DELIVERY_BYTES.inc(size)
        return DeliveryResult(target.url, size, digest, uploaded=True, parts=parts)

    async def _call(self, action: str, target: S3Target, call: Any) -> Any:
        """Await one S3 call, turning its failures into :class:`DeliveryError`."""
        try:
            return await call
        except ClientError as exc:
            raise classify_client_error(exc, target, action) from None
        except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _transport_error(exc, action) from None

    async def _existing(self, client: S3Client, target: S3Target) -> _Existing | None:
        """The object already at the target (size, source and SHA-256 tag), or None."""
        try:
            tags = await client.get_object_tagging(Bucket=target.bucket, Key=target.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise classify_client_error(exc, target, "look for an existing object") from None
        except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _transport_error(exc, "look for an existing object") from None
        head = await self._call(
            "look for an existing object", target, client.head_object(Bucket=target.bucket, Key=target.key)
        )
        tag_values = {str(tag["Key"]): str(tag["Value"]) for tag in tags.get("TagSet", [])}
        metadata: Mapping[str, str] = head.get("Metadata") or {}
        return _Existing(
            size=int(head.get("ContentLength") or 0),
            source_id=metadata.get(SOURCE_METADATA),
            sha256=tag_values.get(SHA256_TAG),
        )

    async def _abort_stale_uploads(self, client: S3Client, target: S3Target) -> None:
        """Abort unfinished uploads to the same key (left by a process that died mid-way); best effort."""
        try:
            listing = await client.list_multipart_uploads(Bucket=target.bucket, Prefix=target.key)
            for upload in listing.get("Uploads", []):
                if upload.get("Key") == target.key and upload.get("UploadId"):
                    await client.abort_multipart_upload(
                        Bucket=target.bucket, Key=target.key, UploadId=upload["UploadId"]
                    )
        except (ClientError, BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.debug("could not clean up unfinished uploads: %s", type(exc).__name__)


class _MultipartUpload:
    """One multipart upload: parts are sent one at a time while the next part is being read."""

    def __init__(self, client: S3Client, target: S3Target, upload_id: str, owner: S3Deliverer) -> None:
        self._client = client
        self._target = target
        self._upload_id = upload_id
        self._owner = owner
        self._parts: list[dict[str, Any]] = []

    async def send(self, chunks: Any, part_size: int) -> tuple[int, str, int]:
        """Upload every part; return (size, hex SHA-256, part count)."""
        digest = hashlib.sha256()
        size = 0
        number = 0
        in_flight: asyncio.Task[dict[str, Any]] | None = None
        try:
            async for part in fixed_parts(chunks, part_size):
                number += 1
                if number > MAX_PARTS:
                    raise DeliveryError(
                        DeliveryReason.INVALID_TARGET,
                        f"the media needs more than {MAX_PARTS} parts of {part_size} bytes",
                        retryable=False,
                    )
                digest.update(part)
                size += len(part)
                if in_flight is not None:
                    self._parts.append(await in_flight)
                in_flight = asyncio.create_task(self._upload_part(number, part))
            if in_flight is not None:
                self._parts.append(await in_flight)
                in_flight = None
            if number == 0:  # an empty file is one empty part
                number = 1
                self._parts.append(await self._upload_part(1, b""))
        finally:
            if in_flight is not None and not in_flight.done():
                in_flight.cancel()
                with contextlib.suppress(BaseException):
                    await in_flight
        return size, digest.hexdigest(), number

    async def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        response = await self._owner._call(
            f"upload part {number}",
            self._target,
            self._client.upload_part(
                Bucket=self._target.bucket,
                Key=self._target.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            ),
        )
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        for name in _PART_CHECKSUMS:
            if response.get(name):
                part[name] = response[name]
        return part

    async def complete(self) -> None:
        await self._owner._call(
            "complete the upload",
            self._target,
            self._client.complete_multipart_upload(
                Bucket=self._target.bucket,
                Key=self._target.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
            ),
        )

    async def abort(self) -> None:
        """Abort the upload so that no part of it stays around; never raises."""
        try:
            async with asyncio.timeout(ABORT_TIMEOUT):
                await asyncio.shield(
                    self._client.abort_multipart_upload(
                        Bucket=self._target.bucket, Key=self._target.key, UploadId=self._upload_id
                    )
                )
        except (ClientError, BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning(
                "could not abort an unfinished upload", extra={"target": self._target.url, "error": repr(exc)}
            )
        except asyncio.CancelledError:
            logger.warning("aborting an unfinished upload was cancelled", extra={"target": self._target.url})
            raise


def _same_content(
    existing: _Existing, source_id: str, expected_size: int | None, known_sha256: str | None
) -> bool:
    if existing.sha256 is None or existing.source_id != source_id:
        return False
    if expected_size is not None and existing.size != expected_size:
        return False
    return known_sha256 is None or known_sha256 == existing.sha256


def _check_size(size: int, announced: int | None, expected: int | None, source_url: str) -> None:
    where = describe_url(source_url)
    if announced is not None and size != announced:
        raise DeliveryError(
            DeliveryReason.SOURCE_UNAVAILABLE,
            f"the download from {where} ended after {size} of {announced} bytes",
            retryable=True,
        )
    if expected is not None and size != expected:
        raise DeliveryError(
            DeliveryReason.SIZE_MISMATCH,
            f"downloaded {size} bytes from {where}, Twilio reported {expected}",
            retryable=True,
        )
