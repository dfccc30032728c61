"""Verification passes: proof of a passed Verify check that any replica of the operator accepts.

A successful VerificationCheck is remembered by the replica that made it; behind several replicas (or
after a restart) the next token request may land where it is not known, and the code cannot be checked
twice. So the answer also carries a pass: the check's expiry and an HMAC over it, the namespace, the room
object (name and UID), the identity and the Verify Service. Every replica derives the same HMAC key from
the operator's own Twilio secret, so a pass needs no shared state, holds no personal data, and stops
working when its room is recreated, its Verify Service changes, its ``ttl`` runs out, or the operator's
secret is rotated (then the identity verifies again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from twilio_video_operator.settings import Settings

VERSION = "vp1"
MAX_PASS_LENGTH = 128
_KEY_LABEL = b"video.openclaw.io verified-join pass v1"


@dataclass(frozen=True)
class PassSubject:
    """What a pass is good for: one identity in one VideoRoom object, checked with one Verify Service."""

    namespace: str
    room: str
    room_uid: str
    identity: str
    service_sid: str

    def message(self, expires_at: int) -> bytes:
        fields = (VERSION, self.namespace, self.room, self.room_uid, self.identity, self.service_sid)
        return "\0".join((*fields, str(expires_at))).encode()


class PassSigner:
    """Issues and checks passes with a key derived from ``secret`` (never the secret itself)."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, subject: PassSubject, expires_at: int) -> str:
        digest = hmac.new(self._key, subject.message(expires_at), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, subject: PassSubject, expires_at: float) -> str:
        """A pass for ``subject`` valid until ``expires_at`` (Unix seconds, rounded down)."""
        stamp = int(expires_at)
        return f"{VERSION}.{stamp}.{self._mac(subject, stamp)}"

    def expiry(self, token: str, subject: PassSubject, now: float) -> int | None:
        """The Unix time ``token`` is good until for ``subject``; ``None`` when it is not a pass of this
        operator for that subject, or has expired."""
        if not token.isascii():
            return None
        version, _, rest = token.partition(".")
        stamp, _, mac = rest.partition(".")
        if version != VERSION or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
            return None
        expires_at = int(stamp)
        if expires_at <= now or not hmac.compare_digest(mac, self._mac(subject, expires_at)):
            return None
        return expires_at


def pass_secret(settings: Settings) -> str:
    """The Twilio secret every replica of the operator shares: its API key secret, else its Auth Token."""
    secret = settings.TWILIO_API_SECRET or settings.TWILIO_AUTH_TOKEN
    if secret is None:  # the settings refuse to load without one
        raise ValueError("the operator has neither TWILIO_API_SECRET nor TWILIO_AUTH_TOKEN")
    return secret.get_secret_value()
