"""Delivery of composition media to a real S3 service (SeaweedFS on 127.0.0.1, SigV4 enforced)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from pydantic import SecretStr
from s3_server import s3_server_fixture  # noqa: F401 - the s3_server fixture

from twilio_video_operator.delivery import (
    MIN_PART_SIZE,
    DeliveryError,
    DeliveryReason,
    DeliveryResult,
    S3Credentials,
    S3Deliverer,
    S3Target,
)
from twilio_video_playground.s3 import S3Identity, SeaweedS3, free_ports

PART = MIN_PART_SIZE
SIZE = 2 * PART + 12_345  # three parts, the last one short


def media_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


@dataclass
class MediaServer:
    """A raw HTTP server for media: ``/ok`` serves the file, ``/cut`` stops half-way, ``/missing`` 404s."""

    data: bytes
    hits: dict[str, int] = field(default_factory=dict)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        path = request_line.split(" ")[1] if " " in request_line else "/"
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/missing":
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {len(self.data)}\r\n\r\n"
            writer.write(head.encode())
            body = self.data if path == "/ok" else self.data[: len(self.data) // 2]
            for offset in range(0, len(body), 1 << 20):
                writer.write(body[offset : offset + (1 << 20)])
                await writer.drain()
        await writer.drain()
        writer.close()


@pytest.fixture
async def media() -> AsyncIterator[MediaServer]:
    server = MediaServer(media_bytes(SIZE))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
    async with listener:
        yield server


@pytest.fixture
async def deliverer() -> AsyncIterator[S3Deliverer]:
    instance = S3Deliverer(part_size=PART, max_attempts=1, connect_timeout=2, read_timeout=10)
    yield instance
    await instance.close()


def creds(identity: S3Identity, secret: str | None = None) -> S3Credentials:
    return S3Credentials(identity.access_key, SecretStr(secret or identity.secret_key))


async def deliver(
    deliverer: S3Deliverer,
    server: SeaweedS3,
    media: MediaServer,
    bucket: str,
    *,
    path: str = "/ok",
    identity: S3Identity | None = None,
    secret: str | None = None,
    expected_size: int | None = SIZE,
    source_id: str = "CJ" + "1" * 32,
    key: str = "tenant/comp/CJ.mp4",
) -> DeliveryResult:
    return await deliverer.deliver(
        source_url=media.url + path,
        target=S3Target(bucket=bucket, key=key, endpoint=server.endpoint, region=server.region),
        credentials=creds(identity or server.writer, secret),
        source_id=source_id,
        expected_size=expected_size,
    )


async def test_multipart_upload_stores_the_bytes_with_their_sha256(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    bucket = s3_server.create_bucket()
    result = await deliver(deliverer, s3_server, media, bucket)

    digest = hashlib.sha256(media.data).hexdigest()
    assert result.uploaded and result.parts == 3
    assert (result.bytes, result.sha256) == (SIZE, digest)
    assert result.url == f"{s3_server.endpoint}/{bucket}/tenant/comp/CJ.mp4"
    stored = await asyncio.to_thread(s3_server.read_object, bucket, "tenant/comp/CJ.mp4")
    assert hashlib.sha256(stored).hexdigest() == digest
    assert s3_server.object_tags(bucket, "tenant/comp/CJ.mp4") == {"sha256": digest}
    info = s3_server.object_info(bucket, "tenant/comp/CJ.mp4")
    assert info["Metadata"]["source-id"] == "CJ" + "1" * 32
    assert info["ContentType"] == "video/mp4"
    assert s3_server.pending_uploads(bucket) == []


async def test_redelivery_of_the_same_media_is_a_no_op(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    bucket = s3_server.create_bucket()
    first = await deliver(deliverer, s3_server, media, bucket)
    second = await deliver(deliverer, s3_server, media, bucket)

    assert media.hits["/ok"] == 1  # the media was not even downloaded again
    assert not second.uploaded
    assert second.sha256 == first.sha256
    assert second.bytes == SIZE


async def test_an_object_of_another_composition_is_replaced(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    bucket = s3_server.create_bucket()
    await deliver(deliverer, s3_server, media, bucket, source_id="CJ" + "a" * 32)
    result = await deliver(deliverer, s3_server, media, bucket, source_id="CJ" + "b" * 32)

    assert result.uploaded
    assert s3_server.object_info(bucket, "tenant/comp/CJ.mp4")["Metadata"]["source-id"] == "CJ" + "b" * 32


async def test_an_interrupted_download_aborts_the_upload(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    bucket = s3_server.create_bucket()
    with pytest.raises(DeliveryError) as caught:
        await deliver(deliverer, s3_server, media, bucket, path="/cut")

    assert caught.value.reason is DeliveryReason.SOURCE_UNAVAILABLE and caught.value.retryable
    assert s3_server.object_keys(bucket) == []  # nothing half-written is visible
    assert s3_server.pending_uploads(bucket) == []  # and no unfinished upload is left behind


async def test_a_size_other_than_twilios_is_refused_before_writing(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    bucket = s3_server.create_bucket()
    with pytest.raises(DeliveryError) as caught:
        await deliver(deliverer, s3_server, media, bucket, expected_size=SIZE + 1)

    assert caught.value.reason is DeliveryReason.SIZE_MISMATCH
    assert s3_server.object_keys(bucket) == [] and s3_server.pending_uploads(bucket) == []


async def test_a_missing_media_file_is_a_retryable_source_error(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    bucket = s3_server.create_bucket()
    with pytest.raises(DeliveryError) as caught:
        await deliver(deliverer, s3_server, media, bucket, path="/missing")

    assert caught.value.reason is DeliveryReason.SOURCE_UNAVAILABLE and caught.value.retryable
    assert "404" in str(caught.value)


@pytest.mark.parametrize("wrong", ["secret", "key"])
async def test_wrong_credentials_give_a_clear_error_without_the_secret(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer, wrong: str
) -> None:
    bucket = s3_server.create_bucket()
    bad_secret = "definitely-not-the-secret-" + "x" * 8
    identity = s3_server.writer if wrong == "secret" else S3Identity("ghost", "AKGHOST00000000", bad_secret)
    with pytest.raises(DeliveryError) as caught:
        await deliver(deliverer, s3_server, media, bucket, identity=identity, secret=bad_secret)

    assert caught.value.reason is DeliveryReason.INVALID_CREDENTIALS and not caught.value.retryable
    assert bad_secret not in str(caught.value) and bad_secret not in repr(caught.value)
    assert media.hits == {}  # refused before the media was downloaded
    assert s3_server.object_keys(bucket) == []


async def test_missing_permission_is_access_denied(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    bucket = s3_server.create_bucket()
    with pytest.raises(DeliveryError) as caught:
        await deliver(deliverer, s3_server, media, bucket, identity=s3_server.reader)

    assert caught.value.reason is DeliveryReason.ACCESS_DENIED and not caught.value.retryable
    assert s3_server.object_keys(bucket) == [] and s3_server.pending_uploads(bucket) == []


async def test_a_missing_bucket_is_bucket_not_found(
    s3_server: SeaweedS3, media: MediaServer, deliverer: S3Deliverer
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await deliver(deliverer, s3_server, media, "no-such-bucket-here")

    assert caught.value.reason is DeliveryReason.BUCKET_NOT_FOUND and not caught.value.retryable
    assert "no-such-bucket-here" in str(caught.value)


async def test_an_unreachable_service_is_retryable(media: MediaServer, deliverer: S3Deliverer) -> None:
    (port,) = free_ports(1)
    with pytest.raises(DeliveryError) as caught:
        await deliverer.deliver(
            source_url=media.url + "/ok",
            target=S3Target(bucket="media", key="k.mp4", endpoint=f"http://127.0.0.1:{port}"),
            credentials=S3Credentials("AKX", SecretStr("not-used-secret")),
            source_id="CJ" + "1" * 32,
            expected_size=SIZE,
        )

    assert caught.value.reason is DeliveryReason.STORAGE_UNAVAILABLE and caught.value.retryable
