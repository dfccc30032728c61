"""``X-Twilio-Signature`` verification with Twilio's own validator (no REST client involved)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from multidict import MultiDict
from twilio.request_validator import RequestValidator

SIGNATURE_HEADER = "X-Twilio-Signature"


def public_url(public_base_url: str, raw_path: str) -> str:
    """The URL Twilio was given and signed: the configured public base plus the request's path and query.

    The Host header is never used: behind a proxy or a load balancer it names the wrong host.
    """
    return public_base_url.rstrip("/") + raw_path


def is_valid_signature(
    auth_token: str, url: str, params: Sequence[tuple[str, str]] | Mapping[str, str], signature: str
) -> bool:
    """Whether ``signature`` is Twilio's HMAC of ``url`` and the form ``params`` with ``auth_token``."""
    if not signature or not auth_token:
        return False
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return bool(RequestValidator(auth_token).validate(url, MultiDict(pairs), signature))
