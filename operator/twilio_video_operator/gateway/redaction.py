"""Scrub secret material from text before it reaches an error message or a log record."""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization header values (Basic or Bearer), in any casing.
    (re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{16,}"), r"\1 " + REDACTED),
    # JSON Web Tokens (Access Tokens): three base64url segments, the first one a JSON header.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # user:password@ in URLs.
    (re.compile(r"(://)[^/@\s:]+:[^/@\s]+@"), r"\1" + REDACTED + "@"),
    # Secret-looking form or JSON fields that a server might echo back.
    (
        re.compile(r"(?i)\b((?:api_?)?secret|password|auth_?token)([\"']?\s*[=:]\s*[\"']?)[^\s\"'&,}]+"),
        r"\1\2" + REDACTED,
    ),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with the given secret values and secret-looking patterns replaced."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
