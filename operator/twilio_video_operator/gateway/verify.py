"""Twilio Verify v2: checking a code the user received (VerificationCheck)."""

from __future__ import annotations

from dataclasses import dataclass

from twilio_video_operator.gateway import catalog
from twilio_video_operator.gateway.bound import BoundOperations, SdkClient, sdk_params
from twilio_video_operator.gateway.errors import NotFoundError


@dataclass(frozen=True)
class VerificationCheckInfo:
    sid: str
    """The Verification's SID (VE...)."""
    to: str | None
    """The phone number or email address the code was sent to."""
    status: str
    """``approved`` for a right code; ``pending`` for a wrong one (the verification stays open)."""
    valid: bool

    @property
    def approved(self) -> bool:
        return self.valid and self.status == "approved"


class VerifyOperations(BoundOperations):
    async def check_verification(
        self, service_sid: str, code: str, *, to: str | None = None, verification_sid: str | None = None
    ) -> VerificationCheckInfo | None:
        """CreateVerificationCheck by ``To`` or by ``VerificationSid``. ``None`` when no pending
        verification matches (never started, expired, already approved or canceled: Twilio's 404).

        A create: a failure that may have reached Twilio is not retried (each check counts against the
        verification's five attempts). Too many wrong codes raise ``ThrottledError`` code 60202.
        """
        params = sdk_params(code=code, to=to, verification_sid=verification_sid)

        async def attempt(client: SdkClient) -> VerificationCheckInfo:
            checks = client.verify.v2.services(service_sid).verification_checks
            record = await checks.create_async(**params)
            return VerificationCheckInfo(
                sid=str(record.sid),
                to=str(record.to) if record.to is not None else None,
                status=str(record.status),
                valid=bool(record.valid),
            )

        try:
            return await self._call(catalog.CREATE_VERIFICATION_CHECK, attempt)
        except NotFoundError:
            return None
