"""The token service's Twilio Verify client: the operator's credentials on a gateway of its own.

A gateway of its own, because the reconciler's may be fenced (a replica that does not lead sends no
creates), while every replica answers token requests. Nothing connects until the first check.
"""

from __future__ import annotations

from twilio_video_operator.gateway import GatewayConfig, TwilioGateway
from twilio_video_operator.gateway.credentials import CredentialSet
from twilio_video_operator.gateway.verify import VerificationCheckInfo
from twilio_video_operator.settings import Settings


class OperatorVerify:
    """A :class:`~twilio_video_operator.tokens.verification.VerificationChecker` for the operator's
    account."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._gateway: TwilioGateway | None = None

    def _credentials(self) -> CredentialSet:
        settings = self._settings
        return CredentialSet(
            account_sid=settings.TWILIO_ACCOUNT_SID,
            api_key=settings.TWILIO_API_KEY,
            api_secret=settings.TWILIO_API_SECRET,
            auth_token=settings.TWILIO_AUTH_TOKEN,
        )

    async def __call__(
        self, service_sid: str, code: str, *, to: str | None, verification_sid: str | None
    ) -> VerificationCheckInfo | None:
        if self._gateway is None:
            self._gateway = TwilioGateway(GatewayConfig.from_settings(self._settings))
        api = self._gateway.api(self._credentials())
        return await api.check_verification(service_sid, code, to=to, verification_sid=verification_sid)

    async def close(self) -> None:
        if self._gateway is not None:
            await self._gateway.close()
            self._gateway = None
