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


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` in its authority."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
