"""Which Twilio credentials a VideoRoom uses: the operator's, or its ``credentialsRef`` Secret's.

The Secret is read on every reconcile (a Kubernetes GET, no Twilio call) and parsed again only when its
``resourceVersion`` changed. The revision (``operator:<fingerprint>`` or ``<secret>@<resourceVersion>``)
is recorded in status so that a stall caused by credentials lifts as soon as they change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.models.videoroom import VideoRoomSpec
from twilio_video_operator.reconcilers import videoroom_conditions as cond
from twilio_video_operator.reconcilers.videoroom import CredentialsCheck

REQUIRED_SECRET_KEYS = ("TWILIO_ACCOUNT_SID", "TWILIO_API_KEY", "TWILIO_API_SECRET")


@dataclass(frozen=True)
class SecretData:
    """A Secret as read: its resourceVersion and decoded string data."""

    resource_version: str
    data: Mapping[str, str]


SecretReader = Callable[[str, str], Awaitable[SecretData | None]]


class CredentialResolver:
    """Resolves the credentials of an object; ``on_new`` sees every credential set read from a Secret."""

    def __init__(
        self,
        operator: CredentialSet,
        read_secret: SecretReader,
        on_new: Callable[[CredentialSet], None] | None = None,
    ) -> None:
        self.operator = operator
        self._read_secret = read_secret
        self._on_new = on_new
        self._cache: dict[tuple[str, str], tuple[str, CredentialSet]] = {}

    async def resolve(
        self, namespace: str, spec: VideoRoomSpec | None
    ) -> tuple[CredentialSet | None, CredentialsCheck]:
        """The credentials (``None`` when unusable, with the problem in the check) and their revision."""
        ref = spec.credentials_ref if spec is not None else None
        if ref is None:
            return self.operator, CredentialsCheck(revision=f"operator:{self.operator.fingerprint}")
        secret = await self._read_secret(namespace, ref.name)
        if secret is None:
            message = f"Secret {ref.name} (spec.credentialsRef) does not exist in namespace {namespace}."
            return None, CredentialsCheck(f"{ref.name}@absent", (cond.CREDENTIALS_NOT_FOUND, message))
        revision = f"{ref.name}@{secret.resource_version}"
        cached = self._cache.get((namespace, ref.name))
        if cached is not None and cached[0] == secret.resource_version:
            return cached[1], CredentialsCheck(revision)
        missing = [key for key in REQUIRED_SECRET_KEYS if not (secret.data.get(key) or "").strip()]
        if missing:
            message = f"Secret {ref.name} lacks {', '.join(missing)}."
            return None, CredentialsCheck(revision, (cond.INVALID_CREDENTIALS, message))
        try:
            creds = CredentialSet.from_mapping(secret.data)
        except ValueError as error:  # the message names keys, never values
            return None, CredentialsCheck(
                revision, (cond.INVALID_CREDENTIALS, f"Secret {ref.name}: {error}.")
            )
        self._cache[(namespace, ref.name)] = (secret.resource_version, creds)
        if self._on_new is not None:
            self._on_new(creds)
        return creds, CredentialsCheck(revision)

    def callbacks_verifiable(self, creds: CredentialSet | None) -> bool:
        """Whether callbacks of this account can be verified (an Auth Token is known for it).

        Rooms of an account without one are created without a StatusCallback: Twilio would only be
        refused, and their status comes from the drift resync instead.
        """
        if creds is None or creds.auth_token is not None:
            return True
        return creds.account_sid == self.operator.account_sid and self.operator.auth_token is not None
