"""HTTP clients for the ``twilio`` SDK that send every Twilio host to one base URL.

Twilio's SDK builds absolute URLs on fixed hosts (``https://video.twilio.com``, ``https://api.twilio.com``,
``https://iam.twilio.com``, and edge/region variants of them). When ``TWILIO_BASE_URL`` is set, these clients
keep the path and query of every request and replace the scheme and host, so the unmodified SDK talks to an
emulator. Pagination URLs returned by the server go through the same rewrite. With ``base_url=None`` the
clients leave URLs alone and behave like the SDK's own clients.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response


def rewrite_twilio_url(url: str, base_url: str) -> str:
    """Return ``url`` with a ``*.twilio.com`` host replaced by ``base_url``; other URLs are untouched."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host != "twilio.com" and not host.endswith(".twilio.com"):
        return url
    base = urlsplit(base_url)
    prefix = base.path.rstrip("/")
    return urlunsplit((base.scheme, base.netloc, prefix + parts.path, parts.query, parts.fragment))


def _target_url(url: str, base_url: str | None) -> str:
    return url if base_url is None else rewrite_twilio_url(url, base_url)


class BaseUrlHttpClient(TwilioHttpClient):
    """Synchronous client that rewrites Twilio hosts to ``base_url`` (no rewrite when it is ``None``)."""

    def __init__(self, base_url: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, _target_url(url, self.base_url), *args, **kwargs)


class AsyncBaseUrlHttpClient(AsyncTwilioHttpClient):
    """Async client (aiohttp) that rewrites Twilio hosts to ``base_url`` (no rewrite when it is ``None``).

    Build it inside a running event loop: it opens its aiohttp session on construction.
    """

    def __init__(self, base_url: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return await super().request(method, _target_url(url, self.base_url), *args, **kwargs)
