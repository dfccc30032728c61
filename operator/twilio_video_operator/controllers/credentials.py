"""The one credentials connector of an operator process, and the one place credentials are redacted.

Every kind asks it for the Twilio credentials of an object: a ``credentialsRef`` Secret in (or none: the
operator's own account), a :class:`~twilio_video_operator.reconcilers.credentials.Connection` out, with
the credentials or the problem in the reasons of :class:`~twilio_video_operator.models.conditions.Reason`.
Secrets are checked once per resourceVersion (see :mod:`twilio_video_operator.reconcilers.credentials`
for the tenancy rules of docs/security.md).
"""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr

from twilio_video_operator.gateway import CredentialSet, TwilioGateway
from twilio_video_operator.kube import KubeClient
from twilio_video_operator.kube.credential_secrets import secret_reader
from twilio_video_operator.logs import register_secret
from twilio_video_operator.reconcilers.credentials import CredentialsConnector, Source
from twilio_video_operator.settings import Settings


class AcceptedTokens(Protocol):
    """Where Auth Tokens that Twilio accepted for their account go (the webhook hub's ``accounts``)."""

    def accept(self, source: Source, account_sid: str, token: SecretStr | None) -> object: ...


def operator_credentials(settings: Settings) -> CredentialSet:
    """The operator's own Twilio credentials (the shared account every tenant may use through it)."""
    return CredentialSet(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        api_key=settings.TWILIO_API_KEY,
        api_secret=settings.TWILIO_API_SECRET,
        auth_token=settings.TWILIO_AUTH_TOKEN,
    )


def redact_credentials(creds: CredentialSet) -> None:
    """Credentials were read from a Secret: keep their secret values out of every log line."""
    for value in creds.secret_values:
        register_secret(value)


def build_connector(
    settings: Settings, kube: KubeClient, gateway: TwilioGateway, accounts: AcceptedTokens
) -> CredentialsConnector:
    """The connector of one operator process. An Auth Token Twilio accepts for its account is handed to
    ``accounts``, which from then on verifies that account's callbacks with it."""

    async def check_token(creds: CredentialSet) -> None:
        await gateway.api(creds).verify_auth_token()

    def accept(source: Source, creds: CredentialSet) -> None:
        accounts.accept(source, creds.account_sid, creds.auth_token)

    return CredentialsConnector(
        operator_credentials(settings),
        secret_reader(kube),
        check_token,
        on_read=redact_credentials,
        on_accepted=accept,
    )
