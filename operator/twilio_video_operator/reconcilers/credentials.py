"""The Twilio credentials an object uses: the operator's own, or a tenant Secret's (``credentialsRef``).

One connector for every kind. A Secret is read on each use (a Kubernetes GET, no Twilio call) and checked
again only when its ``resourceVersion`` changed. The checks are the tenancy rules of docs/security.md:

- a Secret must hold an Account SID and a key (or, where allowed, an Auth Token);
- a Secret may not name the operator's own account: a tenant would then act on, and speak for, the
  account every other tenant shares;
- a Secret's Auth Token verifies callbacks of its account only once Twilio accepted it for that account
  (one request authenticated with the Account SID and that token); a refused token stalls the object.

The revision (``operator:<fingerprint>`` or ``<secret>@<resourceVersion>``) is recorded in status so that a
stall caused by credentials lifts as soon as they change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.errors import AuthError, GatewayError
from twilio_video_operator.models.conditions import Reason

API_KEY_SECRET_KEYS = ("TWILIO_ACCOUNT_SID", "TWILIO_API_KEY", "TWILIO_API_SECRET")

Source = tuple[str, str]
"""``(namespace, Secret name)``."""


@dataclass(frozen=True)
class SecretData:
    """A Secret as read: its resourceVersion and decoded string data."""

    resource_version: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Connection:
    """The outcome of connecting one object: credentials to use, or the problem (``(reason, message)``)."""

    credentials: CredentialSet | None
    revision: str
    problem: tuple[str, str] | None = None
    transient: bool = False
    """The problem may clear by retrying (Twilio could not be asked about the Auth Token)."""
    shared: bool = False
    """The operator's own account: tenants share its name space (see :mod:`.tenancy`)."""
    callbacks_verifiable: bool = False
    """An Auth Token that speaks for the account is known, so Twilio may be given a StatusCallback."""


SecretReader = Callable[[str, str], Awaitable[SecretData | None]]
TokenCheck = Callable[[CredentialSet], Awaitable[None]]
"""Ask Twilio whether ``creds.auth_token`` is the Auth Token of ``creds.account_sid`` (raises if not)."""


class CredentialsConnector:
    """Connects objects to Twilio credentials (see the module docstring).

    ``on_read`` sees every credential set read from a Secret (to redact its secrets from logs);
    ``on_accepted`` every Auth Token Twilio accepted (to verify that account's callbacks with it).
    """

    def __init__(
        self,
        operator: CredentialSet,
        read_secret: SecretReader,
        check_token: TokenCheck,
        *,
        on_read: Callable[[CredentialSet], None] | None = None,
        on_accepted: Callable[[Source, CredentialSet], object] | None = None,
    ) -> None:
        self.operator = operator
        self._read_secret = read_secret
        self._check_token = check_token
        self._on_read = on_read
        self._on_accepted = on_accepted
        self._cache: dict[tuple[str, str, bool], tuple[str, Connection]] = {}

    def operator_connection(self) -> Connection:
        return Connection(
            self.operator,
            f"operator:{self.operator.fingerprint}",
            shared=True,
            callbacks_verifiable=self.operator.auth_token is not None,
        )

    async def connect(
        self, namespace: str, secret_name: str | None, *, require_api_key: bool = True
    ) -> Connection:
        """The credentials of an object in ``namespace`` whose ``credentialsRef`` is ``secret_name``.

        ``require_api_key``: the Secret must hold an API key and secret (REST calls); otherwise an Auth
        Token alone will do (the Keys API).
        """
        if secret_name is None:
            return self.operator_connection()
        secret = await self._read_secret(namespace, secret_name)
        if secret is None:
            message = f"Secret {secret_name} (credentialsRef) does not exist in namespace {namespace}."
            return Connection(None, f"{secret_name}@absent", (Reason.CREDENTIALS_NOT_FOUND, message))
        key = (namespace, secret_name, require_api_key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == secret.resource_version:
            return cached[1]
        connection = await self._check(namespace, secret_name, secret, require_api_key)
        if not connection.transient:
            self._cache[key] = (secret.resource_version, connection)
        return connection

    async def _check(
        self, namespace: str, name: str, secret: SecretData, require_api_key: bool
    ) -> Connection:
        revision = f"{name}@{secret.resource_version}"
        if require_api_key:
            missing = [key for key in API_KEY_SECRET_KEYS if not (secret.data.get(key) or "").strip()]
            if missing:
                message = f"Secret {name} lacks {', '.join(missing)}."
                return Connection(None, revision, (Reason.INVALID_CREDENTIALS, message))
        try:
            creds = CredentialSet.from_mapping(secret.data)
        except ValueError as error:  # the message names keys, never values
            return Connection(None, revision, (Reason.INVALID_CREDENTIALS, f"Secret {name}: {error}."))
        if self._on_read is not None:
            self._on_read(creds)
        if creds.account_sid == self.operator.account_sid:
            message = (
                f"Secret {name} names the operator's own Twilio account {creds.account_sid}; a namespace may "
                "use that account only through the operator: remove spec.credentialsRef, or name an account "
                "of your own."
            )
            return Connection(None, revision, (Reason.ACCOUNT_NOT_ALLOWED, message))
        if creds.auth_token is None:
            return Connection(creds, revision)
        try:
            await self._check_token(creds)
        except AuthError as error:
            message = (
                f"Twilio refused TWILIO_AUTH_TOKEN of Secret {name} for account {creds.account_sid}: {error}"
            )
            return Connection(None, revision, (Reason.AUTH_FAILED, message))
        except GatewayError as error:
            message = f"Could not check the Auth Token of Secret {name} with Twilio: {error}"
            return Connection(None, revision, (Reason.TWILIO_UNAVAILABLE, message), transient=True)
        if self._on_accepted is not None:
            self._on_accepted((namespace, name), creds)
        return Connection(creds, revision, callbacks_verifiable=True)
