"""Verified joins: a room with ``access.verification`` gets tokens only after a Twilio Verify check.

The identity is the Verify ``To`` (the phone number or email address the code went to). A token request
for such a room carries ``verificationCode`` (and, optionally, ``verificationSid``, the VE SID of the
verification); the service asks Verify's VerificationCheck once, and a success lets that identity get
tokens for that room for the room's ``verification.ttl`` without a new code. Concurrent requests for the
same identity and room wait for one check instead of each spending one of Verify's five attempts. The
answer carries a ``verificationPass`` that shows the success to every replica until the same end
(:mod:`.verification_pass`): a request sending it back needs no code wherever it lands.

====  ================================  ============================================================
code  error                             when
====  ================================  ============================================================
403   VerificationRequired              no success known, no valid pass, no ``verificationCode`` sent
403   VerificationFailed                Verify says the code is wrong
403   VerificationNotFound              no pending verification (never started, expired, used)
403   VerificationAttemptsExceeded      too many wrong codes for this verification (Verify 60202)
403   VerificationMismatch              ``verificationSid`` names a verification of another address
503   VerificationUnavailable           Verify could not be asked (Retry-After is set)
====  ================================  ============================================================
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from twilio_video_operator import metrics
from twilio_video_operator.gateway.errors import GatewayError, TerminalError
from twilio_video_operator.gateway.verify import VerificationCheckInfo
from twilio_video_operator.models.duration import parse_duration
from twilio_video_operator.models.videoroom import AccessVerification
from twilio_video_operator.tokens.cache import TtlCache
from twilio_video_operator.tokens.errors import TokenRequestError, bad_request, forbidden, unavailable
from twilio_video_operator.tokens.verification_pass import MAX_PASS_LENGTH, PassSigner, PassSubject

logger = logging.getLogger(__name__)

#: Verify's code for "Max check attempts reached" (HTTP 429, a TerminalError: never retried).
CODE_MAX_CHECK_ATTEMPTS = 60202
MAX_CODE_LENGTH = 32
VERIFICATION_SID_LENGTH = 34


class VerificationChecker(Protocol):
    """Verify's VerificationCheck (``TwilioApi.check_verification`` with the operator's credentials)."""

    def __call__(
        self, service_sid: str, code: str, *, to: str | None, verification_sid: str | None
    ) -> Awaitable[VerificationCheckInfo | None]: ...


def parse_verification(code: object, sid: object) -> tuple[str | None, str | None]:
    """The request's ``verificationCode`` and ``verificationSid`` (400 when malformed)."""
    if code is not None and (
        not isinstance(code, str)
        or not 1 <= len(code) <= MAX_CODE_LENGTH
        or not code.isascii()
        or not code.isalnum()
    ):
        raise bad_request(f"verificationCode must be 1 to {MAX_CODE_LENGTH} letters or digits")
    if sid is not None and (
        not isinstance(sid, str)
        or len(sid) != VERIFICATION_SID_LENGTH
        or not sid.startswith("VE")
        or not all(c in "0123456789abcdefABCDEF" for c in sid[2:])
    ):
        raise bad_request("verificationSid must be a Verification SID (VE followed by 32 hex digits)")
    if sid is not None and code is None:
        raise bad_request("verificationSid needs the verificationCode it was sent")
    return code, sid


def parse_pass(value: object) -> str | None:
    """The request's ``verificationPass`` (400 when it cannot be one; a well-formed but wrong pass is
    judged later, like an absent one)."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_PASS_LENGTH or not value.isascii():
        raise bad_request(
            f"verificationPass must be the pass of an earlier answer ({MAX_PASS_LENGTH} characters at most)"
        )
    return value


def same_address(identity: str, to: str | None) -> bool:
    """Whether Verify's ``to`` is the identity (email addresses compare without case, as Verify stores
    them in lower case)."""
    if to is None:
        return False
    return to == identity or ("@" in identity and to.lower() == identity.lower())


@dataclass(frozen=True)
class VerifiedJoin:
    """A passed check: until when (Unix seconds), and the pass that shows it to any replica."""

    expires_at: int
    pass_token: str


class VerificationGate:
    """Remembers successful checks per subject (identity, room object, Verify Service), accepts the passes
    of earlier checks (:mod:`.verification_pass`), and asks Verify when there is neither."""

    def __init__(
        self,
        check: VerificationChecker,
        clock: Callable[[], float],
        signer: PassSigner,
        max_entries: int = 10_000,
    ) -> None:
        self._check = check
        self._clock = clock
        self._signer = signer
        self._passed: TtlCache[int] = TtlCache(clock, max_entries)
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def require(
        self,
        rule: AccessVerification,
        subject: PassSubject,
        code: str | None,
        verification_sid: str | None,
        presented_pass: str | None = None,
    ) -> VerifiedJoin:
        """Return the passed check of ``subject`` within ``rule.ttl``; else raise the refusal."""
        if (known := self._known(subject, presented_pass)) is not None:
            return known
        if code is None:
            problem = (
                "the verificationPass is not valid for this identity and room, or expired"
                if presented_pass is not None
                else "this room needs a Twilio Verify check"
            )
            raise forbidden(
                "VerificationRequired", f"{problem}: send the verificationCode the identity received"
            )
        lock = self._locks.setdefault(subject, asyncio.Lock())
        try:
            async with lock:
                # A concurrent request for the same identity may just have passed.
                if (known := self._known(subject, None)) is not None:
                    return known
                expires_at = await self._ask(rule, subject, code, verification_sid)
                metrics.VERIFICATIONS.labels("approved").inc()
                return self._remember(subject, expires_at)  # before the lock lets a waiting request in
        finally:
            if not lock.locked() and self._locks.get(subject) is lock:
                del self._locks[subject]

    def _known(self, subject: PassSubject, presented_pass: str | None) -> VerifiedJoin | None:
        """A success this replica remembers, else one the presented pass shows."""
        found, expires_at = self._passed.get(subject)
        if found and expires_at is not None:
            metrics.VERIFICATIONS.labels("cached").inc()
            return VerifiedJoin(expires_at, self._signer.issue(subject, expires_at))
        if presented_pass is None:
            return None
        expires_at = self._signer.expiry(presented_pass, subject, self._clock())
        if expires_at is None:
            return None
        metrics.VERIFICATIONS.labels("pass").inc()
        return self._remember(subject, expires_at)

    def _remember(self, subject: PassSubject, expires_at: int) -> VerifiedJoin:
        self._passed.put(subject, expires_at, expires_at - self._clock())
        return VerifiedJoin(expires_at, self._signer.issue(subject, expires_at))

    async def _ask(
        self, rule: AccessVerification, subject: PassSubject, code: str, verification_sid: str | None
    ) -> int:
        """Ask Verify; the Unix time the success lasts until, or the refusal."""
        identity = subject.identity
        to = None if verification_sid is not None else identity
        try:
            result = await self._check(rule.service_sid, code, to=to, verification_sid=verification_sid)
        except TerminalError as error:
            if error.code == CODE_MAX_CHECK_ATTEMPTS:
                raise self._refused(
                    "VerificationAttemptsExceeded", "too many wrong codes: start a new verification"
                ) from None
            raise self._unavailable(error) from None
        except GatewayError as error:
            raise self._unavailable(error) from None
        if result is None:
            raise self._refused(
                "VerificationNotFound",
                "no pending verification for this identity (never started, expired or already used)",
            )
        if not same_address(identity, result.to):
            raise self._refused(
                "VerificationMismatch", "verificationSid names a verification of another address"
            )
        if not result.approved:
            raise self._refused("VerificationFailed", "the verification code is not valid")
        return int(self._clock() + parse_duration(rule.ttl).total_seconds())

    @staticmethod
    def _refused(reason: str, message: str) -> TokenRequestError:
        metrics.VERIFICATIONS.labels("refused").inc()
        return forbidden(reason, message)

    @staticmethod
    def _unavailable(error: GatewayError) -> TokenRequestError:
        metrics.VERIFICATIONS.labels("error").inc()
        logger.warning("Twilio Verify could not check a code: %s", error)
        retry = getattr(error, "retry_after", None)
        return unavailable(
            "VerificationUnavailable", "Twilio Verify could not be asked; try again", int(retry or 5)
        )
