"""Reading the media to deliver: an HTTP GET streamed in chunks, cut into fixed-size parts.

The media URL (the target of Twilio's ``/Media`` redirect) is pre-signed and short-lived, so no credential
is sent. Nothing here holds more than one part in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from twilio_video_operator.delivery.errors import DeliveryError, DeliveryReason

READ_CHUNK_BYTES = 256 * 1024
#: No overall limit (files may be large); connecting and each read must progress.
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


@dataclass
class MediaStream:
    """An open download: announced length and type, and the body as chunks."""

    content_length: int | None
    content_type: str | None
    response: aiohttp.ClientResponse

    async def chunks(self, chunk_size: int = READ_CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The body; a connection lost mid-way raises ``DeliveryError(SourceUnavailable)``."""
        try:
            async for chunk in self.response.content.iter_chunked(chunk_size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise source_error(f"the media download was interrupted ({type(exc).__name__})") from None


def source_error(message: str) -> DeliveryError:
    return DeliveryError(DeliveryReason.SOURCE_UNAVAILABLE, message, retryable=True)


def describe_url(url: str) -> str:
    """Scheme, host and path of ``url``; a pre-signed query string is a capability and stays out."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


@contextlib.asynccontextmanager
async def open_media(
    session: aiohttp.ClientSession, url: str, *, limits: aiohttp.ClientTimeout = DOWNLOAD_TIMEOUT
) -> AsyncIterator[MediaStream]:
    """GET ``url`` and yield the open stream; errors become ``DeliveryError(SourceUnavailable)``."""
    try:
        response = await session.get(url, timeout=limits)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise source_error(f"cannot download the media ({type(exc).__name__})") from None
    try:
        if response.status != 200:
            raise source_error(f"the media URL answered HTTP {response.status}")
        yield MediaStream(response.content_length, response.content_type or None, response)
    finally:
        response.release()


async def fixed_parts(chunks: AsyncIterator[bytes], part_size: int) -> AsyncIterator[bytes]:
    """Regroup ``chunks`` into parts of exactly ``part_size`` bytes; the last part may be shorter.

    At most one part (plus one incoming chunk) is buffered at any time. Nothing is yielded for an empty
    stream.
    """
    if part_size < 1:
        raise ValueError("part_size must be positive")
    buffer = bytearray()
    async for chunk in chunks:
        view = memoryview(chunk)
        while view:
            room = part_size - len(buffer)
            buffer += view[:room]
            view = view[room:]
            if len(buffer) == part_size:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)
