"""One Twilio credential set: the values a Secret (or the operator's environment) provides."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

_FINGERPRINT_DOMAIN = b"twilio-video-operator/credential-set/v1\x00"


@dataclass(frozen=True)
class CredentialSet:
    """Account SID plus an API key and/or the Auth Token.

    REST calls use the API key when there is one, else the Auth Token. Calls to the Keys API use the Auth
    Token when there is one, else the API key (which must then be a Main key). Secret values are
    ``SecretStr`` so that ``repr()`` and logging never show them.
    """

    account_sid: str
    api_key: str | None = None
    api_secret: SecretStr | None = None
    auth_token: SecretStr | None = None

    def __post_init__(self) -> None:
        if not self.account_sid:
            raise ValueError("a credential set needs an account SID")
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("an API key and its secret must be given together")
        if self.api_key is None and self.auth_token is None:
            raise ValueError("a credential set needs an API key and secret, or an Auth Token")

    @classmethod
    def from_mapping(cls, data: Mapping[str, str]) -> CredentialSet:
        """Build from decoded Secret data or environment-style keys (``TWILIO_ACCOUNT_SID``, ...)."""

        def text(name: str) -> str | None:
            value = data.get(name)
            return value.strip() if value and value.strip() else None

        account_sid = text("TWILIO_ACCOUNT_SID")
        if account_sid is None:
            raise ValueError("TWILIO_ACCOUNT_SID is missing")
        secret = text("TWILIO_API_SECRET")
        token = text("TWILIO_AUTH_TOKEN")
        return cls(
            account_sid=account_sid,
            api_key=text("TWILIO_API_KEY"),
            api_secret=SecretStr(secret) if secret is not None else None,
            auth_token=SecretStr(token) if token is not None else None,
        )

    @property
    def identity(self) -> tuple[str, str | None]:
        """The non-secret identity: which account and which key. Used as the client pool slot."""
        return (self.account_sid, self.api_key)

    @property
    def fingerprint(self) -> str:
        """A short, stable digest of every value, secrets included; it changes when any value changes.

        It is a one-way hash of high-entropy secrets, so it reveals nothing about them and is safe to log.
        """
        digest = hashlib.sha256(_FINGERPRINT_DOMAIN)
        for part in (self.account_sid, self.api_key, _reveal(self.api_secret), _reveal(self.auth_token)):
            digest.update((part or "").encode())
            digest.update(b"\x00")
        return digest.hexdigest()[:16]

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The secret strings of this set, for redaction of text that might echo them."""
        return tuple(value for value in (_reveal(self.api_secret), _reveal(self.auth_token)) if value)

    def rest_auth(self) -> tuple[str, str]:
        """Basic-auth user and password for REST calls: the API key if present, else the Auth Token."""
        if self.api_key is not None and self.api_secret is not None:
            return (self.api_key, self.api_secret.get_secret_value())
        assert self.auth_token is not None  # guaranteed by __post_init__
        return (self.account_sid, self.auth_token.get_secret_value())

    def keys_api_auth(self) -> tuple[str, str]:
        """Basic-auth user and password for the Keys API: the Auth Token if present, else the (Main) key."""
        if self.auth_token is not None:
            return (self.account_sid, self.auth_token.get_secret_value())
        return self.rest_auth()

    def __str__(self) -> str:
        key = self.api_key or "auth-token"
        return f"CredentialSet({self.account_sid}, {key}, fingerprint={self.fingerprint})"


def _reveal(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
