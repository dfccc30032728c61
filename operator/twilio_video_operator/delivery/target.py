"""Where one media file goes: bucket, key, endpoint and region, and a credential-free URL for status."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit


@dataclass(frozen=True)
class S3Target:
    """An object in an S3-compatible bucket. ``endpoint`` unset means AWS S3 in ``region``."""

    bucket: str
    key: str
    endpoint: str | None = None
    region: str | None = None

    @property
    def endpoint_url(self) -> str | None:
        """The endpoint without any user-info part (credentials never belong in a URL)."""
        return strip_userinfo(self.endpoint) if self.endpoint else None

    @property
    def url(self) -> str:
        """Where the object is, for humans and status: ``s3://bucket/key`` on AWS, a path-style URL else."""
        if self.endpoint_url is None:
            return f"s3://{self.bucket}/{self.key}"
        return f"{self.endpoint_url.rstrip('/')}/{self.bucket}/{quote(self.key, safe='/')}"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, without user-info or path."""
    parts = urlsplit(strip_userinfo(url))
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def endpoint_allowed(endpoint: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether deliveries may go to ``endpoint`` (``None``: AWS S3, always allowed).

    ``allowed`` lists origins (``https://s3.example.com``, ``http://10.0.0.5:9000``); a host may start with
    ``*.`` to allow its subdomains. Empty: every endpoint (the operator's network policy is then the only
    limit on where a tenant can make it send requests).
    """
    if endpoint is None or not allowed:
        return True
    origin = origin_of(endpoint)
    scheme, _, netloc = origin.partition("://")
    for entry in allowed:
        want = origin_of(entry.strip())
        want_scheme, _, want_netloc = want.partition("://")
        if want_scheme != scheme:
            continue
        if want_netloc == netloc:
            return True
        if (
            want_netloc.startswith("*.")
            and netloc.endswith(want_netloc[1:])
            and len(netloc) > len(want_netloc) - 1
        ):
            return True
    return False


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` in its authority."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
