"""S3 credentials as read from a Kubernetes Secret; secret values are kept as ``SecretStr``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from twilio_video_operator.delivery.errors import DeliveryError, DeliveryReason

ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"  # noqa: S105 - a Secret key name, not a secret
SESSION_TOKEN = "AWS_SESSION_TOKEN"  # noqa: S105 - a Secret key name, not a secret


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair and an optional session token (temporary credentials)."""

    access_key_id: str
    secret_access_key: SecretStr
    session_token: SecretStr | None = None

    @classmethod
    def from_secret_data(cls, data: Mapping[str, str], *, source: str = "the Secret") -> S3Credentials:
        """Build from decoded Secret data; a missing key raises ``DeliveryError(CredentialsNotFound)``."""

        def value(key: str) -> str | None:
            text = data.get(key)
            return text.strip() if text and text.strip() else None

        access_key_id, secret_access_key = value(ACCESS_KEY_ID), value(SECRET_ACCESS_KEY)
        missing = [
            key
            for key, found in ((ACCESS_KEY_ID, access_key_id), (SECRET_ACCESS_KEY, secret_access_key))
            if found is None
        ]
        if access_key_id is None or secret_access_key is None:
            raise DeliveryError(
                DeliveryReason.CREDENTIALS_NOT_FOUND,
                f"{source} has no {' or '.join(missing)}",
                retryable=False,
            )
        token = value(SESSION_TOKEN)
        return cls(
            access_key_id=access_key_id,
            secret_access_key=SecretStr(secret_access_key),
            session_token=SecretStr(token) if token is not None else None,
        )

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The secret strings, for redaction of text that might echo them."""
        values = [self.secret_access_key.get_secret_value()]
        if self.session_token is not None:
            values.append(self.session_token.get_secret_value())
        return tuple(values)
